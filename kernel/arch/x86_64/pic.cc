// Implementation of arch.x86_64.pic (Intel 8259A data sheet: the ICW sequence).
module arch.x86_64.pic;

import ktl;
import arch.x86_64.cpu;

namespace arch::x86_64 {

namespace {

constexpr ktl::u16 kMasterCommand = 0x20, kMasterData = 0x21;
constexpr ktl::u16 kSlaveCommand = 0xa0, kSlaveData = 0xa1;
constexpr ktl::u8 kIcw1Init = 0x11;           // initialise, ICW4 follows (edge triggered, cascaded)
constexpr ktl::u8 kIcw3MasterCascade = 0x04;  // the slave sits on the master's IRQ 2
constexpr ktl::u8 kIcw3SlaveIdentity = 0x02;  // the slave's cascade identity
constexpr ktl::u8 kIcw4Mode8086 = 0x01;

// A short delay between PIC writes (old PICs need it): a write to the unused POST port.
void io_wait() { outb(0x80, 0); }

void write(ktl::u16 port, ktl::u8 value) {
  outb(port, value);
  io_wait();
}

}  // namespace

void remap_and_mask_pics() {
  write(kMasterData, 0xff);  // nothing through while they are reprogrammed
  write(kSlaveData, 0xff);
  write(kMasterCommand, kIcw1Init);
  write(kSlaveCommand, kIcw1Init);
  write(kMasterData, kPicMasterVectorBase);  // ICW2: vector bases
  write(kSlaveData, kPicSlaveVectorBase);
  write(kMasterData, kIcw3MasterCascade);
  write(kSlaveData, kIcw3SlaveIdentity);
  write(kMasterData, kIcw4Mode8086);
  write(kSlaveData, kIcw4Mode8086);
  write(kMasterData, 0xff);  // OCW1: every line masked
  write(kSlaveData, 0xff);
}

}  // namespace arch::x86_64
