// Host tests of loader.secure_boot: every combination of the SecureBoot and SetupMode variables
// the firmware can hand the loader, and the line the loader prints for each.
#include <gtest/gtest.h>

#include <string>

import ktl;
import efi;
import loader.secure_boot;

namespace {

using loader::SecureBoot;
using Var = efi::Result<ktl::u8>;

Var value(ktl::u8 v) { return Var(v); }
Var error(efi::Status s) { return Var(ktl::Err(s)); }

std::string line(const loader::SecureBootState& s) {
  ktl::InlineString<160> out;
  ktl::format_to(out, "Secure Boot {}", s);
  return std::string(out.c_str());
}

TEST(SecureBoot, EnabledInUserMode) {
  auto s = loader::decode_secure_boot(value(1), value(0));
  EXPECT_EQ(s.state, SecureBoot::Enabled);
  EXPECT_EQ(line(s), "Secure Boot enabled");
}

TEST(SecureBoot, EnabledEvenIfSetupModeIsUnreadable) {
  auto s = loader::decode_secure_boot(value(1), error(efi::Status::NotFound));
  EXPECT_EQ(s.state, SecureBoot::Enabled);
}

TEST(SecureBoot, DisabledInUserMode) {
  auto s = loader::decode_secure_boot(value(0), value(0));
  EXPECT_EQ(s.state, SecureBoot::Disabled);
  EXPECT_EQ(line(s), "Secure Boot disabled");
}

TEST(SecureBoot, DisabledInSetupModeSaysWhy) {
  auto s = loader::decode_secure_boot(value(0), value(1));
  EXPECT_EQ(s.state, SecureBoot::Disabled);
  EXPECT_EQ(line(s), "Secure Boot disabled (setup mode: no platform key enrolled)");
}

TEST(SecureBoot, NoVariableMeansTheFirmwareLacksSecureBoot) {
  auto s = loader::decode_secure_boot(error(efi::Status::NotFound), error(efi::Status::NotFound));
  EXPECT_EQ(s.state, SecureBoot::Disabled);
  EXPECT_EQ(line(s),
            "Secure Boot disabled (no SecureBoot variable: this firmware does not implement Secure Boot)");
}

TEST(SecureBoot, UnreadableVariableIsUnknown) {
  auto s = loader::decode_secure_boot(error(efi::Status::DeviceError), value(0));
  EXPECT_EQ(s.state, SecureBoot::Unknown);
  EXPECT_EQ(line(s), "Secure Boot unknown (SecureBoot: EFI_DEVICE_ERROR)");
  // A variable of the wrong size (efi::RuntimeServices::get_byte_variable).
  EXPECT_EQ(line(loader::decode_secure_boot(error(efi::Status::BadBufferSize), value(0))),
            "Secure Boot unknown (SecureBoot: EFI_BAD_BUFFER_SIZE)");
}

TEST(SecureBoot, ReservedValueIsUnknown) {
  auto s = loader::decode_secure_boot(value(2), value(0));
  EXPECT_EQ(s.state, SecureBoot::Unknown);
  EXPECT_EQ(line(s), "Secure Boot unknown (SecureBoot = 2, a reserved value)");
  EXPECT_EQ(loader::decode_secure_boot(value(0xff), value(0)).state, SecureBoot::Unknown);
}

TEST(SecureBoot, EnabledInSetupModeIsAContradiction) {
  auto s = loader::decode_secure_boot(value(1), value(1));
  EXPECT_EQ(s.state, SecureBoot::Unknown);
  EXPECT_EQ(line(s), "Secure Boot unknown (SecureBoot = 1 but SetupMode = 1)");
}

}  // namespace
