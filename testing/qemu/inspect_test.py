#!/usr/bin/env python3
"""Boots the image under QEMU and inspects the machine from outside (gdbstub + QMP), twice:

 1. At the kernel's first instruction (a gdbstub breakpoint on the ELF entry point), i.e. exactly
    what the loader handed over: CR0.WP, EFER.NXE, the loader's GDT (direct-map base, CS=0x08,
    SS=DS=0x10) and an empty IDT (limit 0); rdi = the boot info, rsp = stack top - 8; the boot
    info (version, memory map sorted/disjoint/merged with every loader placement marked, ramdisk
    bytes intact, framebuffer WC in the direct map); and the page tables walked from CR3.
 2. After the kernel settled in its shell (the prompt; the shell task then sleeps waiting for
    input, and nothing maps or unmaps): the page tables in force then (the kernel has adopted the
    loader's and added its own mappings: heap, IST and task stacks with guard pages, device
    registers), and the kernel's own view of them: booted with
    `pagetables=dump`, the kernel walks its active tables with mm.paging's formats and prints every
    mapping (the "vm:" block, kernel/vmview.cppm); that list must equal this walk from outside,
    range for range (virtual and physical address, size, W/X/U/G and memory type), with the same
    number of leaf entries, the same root and the same recursive slot. And both 8259 PICs
    remapped to vectors 0x20/0x28 with every line masked (QEMU's `info pic`).

Page-table assertions at both points: no page both writable and executable, the null page
unmapped, the stack guard page unmapped, kernel text present and not writable (rodata read-only
NX, data NX); at the hand-off also: the only executable identity-mapped page is the loader's
trampoline, the identity map covers RAM kinds only, and QEMU's own `gva2gpa`/`info mem` agree with
the walker on sample addresses and on the writable total.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boot_test  # noqa: E402
import bootinfo  # noqa: E402
import gdbstub  # noqa: E402
import pagetables  # noqa: E402
import qmp  # noqa: E402

PAGE = 4096
RAM_KINDS = {"usable", "loader-reclaimable", "kernel-image", "kernel-stack", "page-tables", "boot-info",
             "ramdisk", "acpi-reclaimable", "acpi-nvs", "runtime-services"}
LOADER_KINDS = {"kernel-image", "kernel-stack", "page-tables", "boot-info", "ramdisk", "framebuffer"}


class Checks:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, cond, message):
        if cond:
            self.passed += 1
        else:
            self.failures.append(message)
            print("FAIL: " + message, flush=True)
        return cond


def kernel_segments(path):
    """[(vaddr, memsz, flags)] of the kernel ELF's PT_LOAD segments and its entry point."""
    data = open(path, "rb").read()
    entry, phoff = struct.unpack_from("<QQ", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    segs = []
    for i in range(phnum):
        p_type, p_flags, _off, vaddr, _pa, _fsz, memsz = struct.unpack_from("<IIQQQQQ", data, phoff + i * phentsize)
        if p_type == 1 and memsz:
            segs.append((vaddr, memsz, p_flags))
    return segs, entry


def check_tables(c, where, maps, segs, guard_page):
    real = [m for m in maps if not m.recursive]
    print("%s: %d leaf mappings (%d coalesced)" % (where, len(real), len(pagetables.coalesce(real))))
    wx = [m for m in real if m.writable and m.executable]
    c.check(not wx, "%s: %d mappings are writable and executable, first %s"
            % (where, len(wx), pagetables.describe(wx[0]) if wx else ""))
    c.check(pagetables.lookup(maps, 0) is None, "%s: the null page is mapped" % where)
    c.check(pagetables.lookup(maps, guard_page) is None,
            "%s: the stack guard page %#x is mapped" % (where, guard_page))
    for vaddr, memsz, flags in segs:
        for va in range(vaddr & ~(PAGE - 1), vaddr + memsz, PAGE):
            m = pagetables.lookup(maps, va)
            if not c.check(m is not None, "%s: kernel page %#x is not mapped" % (where, va)):
                break
            name = "text" if flags & 1 else "data" if flags & 2 else "rodata"
            ok = (m.executable and not m.writable) if name == "text" else \
                (m.writable and not m.executable) if name == "data" else (not m.writable and not m.executable)
            if not c.check(ok, "%s: kernel %s page %#x has %s" % (where, name, va, pagetables.describe(m))):
                break


def compare_kernel_view(c, text, maps, cr3):
    """The kernel's "vm:" block against the walk from outside (see the module comment)."""
    view = pagetables.parse_vm_block(text)
    if not c.check(view is not None, "the kernel printed no complete 'vm:' block (pagetables=dump)"):
        return
    outside = pagetables.kernel_view_of(maps)
    leaves = sum(1 for m in maps if not m.recursive)
    recursive = [m for m in maps if m.recursive]
    print("inspect: the kernel's view: %d ranges, %d leaves; from outside: %d ranges, %d leaves"
          % (len(view["ranges"]), view["leaves"], len(outside), leaves))
    c.check(view["root"] == cr3 & pagetables.ADDR, "the kernel walked root %#x, CR3 is %#x" % (view["root"], cr3))
    c.check(view["count"] == len(view["ranges"]), "the kernel's block announces %d ranges but lists %d"
            % (view["count"], len(view["ranges"])))
    c.check(view["leaves"] == leaves, "leaf entries: the kernel counts %d, the walk from outside %d"
            % (view["leaves"], leaves))
    slots = [(m.va >> 39) & 511 for m in recursive]
    c.check(slots == ([view["recursive_slot"]] if view["recursive_slot"] is not None else []),
            "recursive slots: the kernel reports %s, the walk from outside %s" % (view["recursive_slot"], slots))
    mine = set(view["ranges"])
    theirs = set(outside)
    only_kernel = sorted(mine - theirs)
    only_outside = sorted(theirs - mine)
    for r in only_kernel[:8]:
        print("  only in the kernel's view: " + pagetables.describe_range(r))
    for r in only_outside[:8]:
        print("  only in QEMU's tables:     " + pagetables.describe_range(r))
    c.check(not only_kernel and not only_outside and view["ranges"] == outside,
            "the kernel's view of its mappings differs from QEMU's: %d ranges only in the kernel's, %d only "
            "outside" % (len(only_kernel), len(only_outside)))


def check_pics(c, text):
    """QEMU's `info pic`: both 8259s remapped to vectors 0x20 / 0x28 and every line masked (the
    kernel takes interrupts through the APICs; arch.x86_64.pic)."""
    pics = {int(m.group(1)): (int(m.group(2), 16), int(m.group(3), 16))
            for m in re.finditer(r"pic(\d): irr=[0-9a-f]+ imr=([0-9a-f]+) isr=[0-9a-f]+ hprio=\d+ irq_base=([0-9a-f]+)",
                                 text)}
    if not c.check(set(pics) == {0, 1}, "info pic shows no two 8259s:\n" + text):
        return
    ok = True
    for n, base in ((0, 0x20), (1, 0x28)):
        imr, irq_base = pics[n]
        ok &= c.check(irq_base == base, "8259 #%d at vector base %#x, not %#x" % (n, irq_base, base))
        ok &= c.check(imr == 0xff, "8259 #%d has unmasked lines (imr %#04x)" % (n, imr))
    if ok:
        print("inspect: both 8259s at vector bases 0x20/0x28, all lines masked", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                fromfile_prefix_chars="@")
    p.add_argument("--image", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--vars", required=True)
    p.add_argument("--kernel", required=True, help="the kernel ELF on the image (for its segments)")
    p.add_argument("--ramdisk", help="put this file at /ferrite/initrd.img and check it arrives intact")
    p.add_argument("--cmdline", default="log=info pagetables=dump")
    p.add_argument("--machine", default="q35")
    p.add_argument("--memory", default="1G")
    p.add_argument("--cpu", default="max")
    p.add_argument("--final", default=r"ferrite> ", help="what the kernel prints once it has settled")
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()

    work = tempfile.mkdtemp(prefix="inspect.", dir=os.environ.get("TEST_TMPDIR"))
    os.environ["TMPDIR"] = work
    img = work + "/disk.img"
    shutil.copyfile(a.image, img)
    shutil.copyfile(a.vars, work + "/vars.fd")
    os.chmod(img, 0o644)
    os.chmod(work + "/vars.fd", 0o644)
    with open(work + "/cmdline.txt", "w") as f:
        f.write(a.cmdline + "\n")
    boot_test.mtools(["mcopy", "-o", work + "/cmdline.txt", "::/ferrite/cmdline.txt"], img)
    if a.ramdisk:
        boot_test.mtools(["mcopy", "-o", a.ramdisk, "::/ferrite/initrd.img"], img)

    ns = argparse.Namespace(arch="x86_64", machine=a.machine, cpu=a.cpu, memory=a.memory, code=a.code,
                            qmp=True, qemu_arg=["-S", "-gdb", "unix:%s/gdb.sock,server=on,wait=off"
                                                % boot_test.socket_dir(work)])
    cmd = boot_test.qemu_command(ns, work)
    print("inspect: " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    c = Checks()
    segs, entry = kernel_segments(a.kernel)
    log_path = work + "/serial.log"

    def serial():
        if not os.path.exists(log_path):
            return ""
        with open(log_path, "rb") as f:
            return boot_test.clean(f.read().decode("utf-8", "replace"))

    try:
        gdb = gdbstub.GdbStub(boot_test.socket_dir(work) + "/gdb.sock")
        q = qmp.Qmp(boot_test.socket_dir(work) + "/qmp.sock", scratch_dir=work)
        gdb.break_at(entry)
        print("inspect: breakpoint at the kernel entry %#x; booting" % entry, flush=True)
        gdb.resume_until_stop(timeout=a.timeout)

        # --- 1. the hand-off ----------------------------------------------------------------------
        regs = q.registers()
        print("inspect: stopped at RIP=%#x CR0=%#x CR3=%#x CR4=%#x EFER=%#x GDT=%s IDT=%s CS=%#x SS=%#x"
              % (regs["RIP"], regs["CR0"], regs["CR3"], regs["CR4"], regs["EFER"],
                 tuple(hex(v) for v in regs["GDT"]), tuple(hex(v) for v in regs["IDT"]), regs["CS"], regs["SS"]))
        c.check(regs["RIP"] == entry, "stopped at %#x, not the kernel entry %#x" % (regs["RIP"], entry))
        c.check(regs["CR0"] & (1 << 16), "CR0.WP is clear at the hand-off")
        c.check(regs["CR0"] & (1 << 31), "paging is off at the hand-off")
        c.check(regs["EFER"] & (1 << 11), "EFER.NXE is clear at the hand-off")
        c.check(regs["IDT"][1] == 0, "the IDT is not empty at the hand-off: limit %#x" % regs["IDT"][1])
        c.check(regs["GDT"][0] >= 0xffff_8000_0000_0000 and regs["GDT"][1] == 23,
                "not the loader's GDT (3 entries in the direct map): %s" % (regs["GDT"],))
        c.check(regs["CS"] == 0x08 and all(regs[s] == 0x10 for s in ("SS", "DS", "ES")),
                "segment registers CS=%#x SS=%#x DS=%#x ES=%#x" % (regs["CS"], regs["SS"], regs["DS"], regs["ES"]))

        read = q.read_phys
        info_phys = regs["RDI"] - 0xffff_8000_0000_0000
        info = bootinfo.parse(read(info_phys, bootinfo.SIZE))
        direct = info["direct_map_base"]
        c.check(regs["RDI"] == direct + info_phys, "rdi is not the boot info's direct-map address")
        c.check(regs["RSP"] == info["stack_virt_top"] - 8, "rsp %#x is not the stack top - 8" % regs["RSP"])
        c.check(regs["CR3"] & pagetables.ADDR == info["page_table_root"], "CR3 is not BootInfo.page_table_root")
        c.check(info["kernel_sha256_verified"] == 1, "the loader did not verify the kernel digest")
        c.check(info["flags"] & 1, "BootInfo.flags lacks NoExecute")
        c.check(info["pat"] == pagetables.FERRITE_PAT, "unexpected PAT %#x" % info["pat"])
        guard_page = info["stack_virt_top"] - info["stack_size"] - PAGE

        # The normalised memory map.
        regions = bootinfo.memory_map(read, info)
        print("inspect: boot info v%d, %d regions:" % (info["version"], len(regions)))
        for base, size, kind in regions:
            print("  %#014x-%#014x %8d KiB %s" % (base, base + size, size >> 10, kind))
        for i, (base, size, kind) in enumerate(regions):
            c.check(size > 0 and base % PAGE == 0 and size % PAGE == 0, "region %d not page aligned/empty" % i)
            if i:
                pb, ps, pk = regions[i - 1]
                c.check(pb + ps <= base, "regions %d and %d overlap or are unsorted" % (i - 1, i))
                c.check(not (pb + ps == base and pk == kind), "regions %d and %d are not merged" % (i - 1, i))

        def kind_of(phys):
            for base, size, kind in regions:
                if base <= phys < base + size:
                    return kind
            return None

        def check_marked(what, base, size, kind):
            for phys in range(base & ~(PAGE - 1), base + size, PAGE):
                if not c.check(kind_of(phys) == kind, "%s page %#x is %s, not %s" % (what, phys, kind_of(phys), kind)):
                    return

        check_marked("kernel image", info["kernel_phys_base"], info["kernel_phys_size"], "kernel-image")
        check_marked("boot info", info_phys, bootinfo.SIZE, "boot-info")
        check_marked("memory map", info["memory_map"], 24 * len(regions), "boot-info")
        check_marked("page-table root", info["page_table_root"], PAGE, "page-tables")
        if info["fb_base"]:
            check_marked("framebuffer", info["fb_base"], info["fb_size"], "framebuffer")
            c.check(info["fb_pitch"] >= info["fb_width"] * 4 and info["fb_pitch"] * info["fb_height"] <= info["fb_size"],
                    "framebuffer geometry %dx%d pitch %d size %d" % (info["fb_width"], info["fb_height"],
                                                                    info["fb_pitch"], info["fb_size"]))
        if a.ramdisk:
            expected = open(a.ramdisk, "rb").read()
            c.check(info["ramdisk_size"] == len(expected), "ramdisk size %d, file has %d" % (info["ramdisk_size"], len(expected)))
            check_marked("ramdisk", info["ramdisk_base"], info["ramdisk_size"], "ramdisk")
            c.check(read(info["ramdisk_base"], len(expected)) == expected, "the ramdisk bytes in memory differ from the file")
        c.check(info["acpi_rsdp"] != 0 and read(info["acpi_rsdp"], 8) == b"RSD PTR ", "BootInfo.acpi_rsdp is not an RSDP")
        c.check(info["smbios_entry"] != 0 and read(info["smbios_entry"], 4) in (b"_SM_", b"_SM3"),
                "BootInfo.smbios_entry is not an SMBIOS entry point")

        # The page tables at the hand-off.
        maps = pagetables.walk(read, regs["CR3"], pat=info["pat"])
        check_tables(c, "hand-off", maps, segs, guard_page)
        stack = pagetables.lookup(maps, info["stack_virt_top"] - 8)
        if c.check(stack is not None, "the stack top is not mapped"):
            # One AllocatePages block: physically contiguous.
            check_marked("stack", pagetables.translate(maps, info["stack_virt_top"] - info["stack_size"]),
                         info["stack_size"], "kernel-stack")
        identity = [m for m in maps if m.va < (1 << 47) and not m.recursive]
        exec_identity = [m for m in identity if m.executable]
        c.check(len(exec_identity) == 1 and exec_identity[0].size == PAGE,
                "the identity map has %d executable mappings (want the one trampoline page): %s"
                % (len(exec_identity), [pagetables.describe(m) for m in exec_identity[:4]]))
        for m in identity:
            c.check(m.va == m.pa, "identity mapping %s is not identity" % pagetables.describe(m))
            bad = [p for p in range(m.pa, m.pa + m.size, PAGE) if kind_of(p) not in RAM_KINDS]
            if not c.check(not bad, "identity map covers %#x (%s), not RAM" % (bad[0] if bad else 0,
                                                                              kind_of(bad[0]) if bad else "")):
                break
        for base, size, kind in regions:
            if kind in RAM_KINDS and base > 0:
                c.check(pagetables.translate(maps, base) == base and pagetables.translate(maps, direct + base) == base,
                        "RAM region %#x (%s) missing from the identity or direct map" % (base, kind))
        if info["fb_base"]:
            for off in (0, info["fb_size"] - PAGE):
                m = pagetables.lookup(maps, direct + info["fb_base"] + off)
                c.check(m is not None and m.cache == "WC" and m.writable and not m.executable,
                        "framebuffer page %#x in the direct map: %s" % (info["fb_base"] + off,
                                                                       pagetables.describe(m) if m else "unmapped"))

        # The local APIC (QEMU: the default 0xfee00000) is in the direct map, uncached.
        m = pagetables.lookup(maps, direct + 0xfee0_0000)
        c.check(m is not None and m.cache == "UC" and not m.executable and kind_of(0xfee0_0000) == "mmio",
                "local APIC page in the direct map: %s, kind %s"
                % (pagetables.describe(m) if m else "unmapped", kind_of(0xfee0_0000)))

        # QEMU's own translation agrees with the walker.
        samples = [0, guard_page, entry, info["stack_virt_top"] - 8, regs["RDI"], direct + info["fb_base"],
                   info["page_table_root"]] + [v for v, _, _ in segs]
        for va in samples:
            text = q.hmp("gva2gpa %#x" % va)
            mine = pagetables.translate(maps, va)
            theirs = None if "Unmapped" in text or "not" in text.lower() else int(text.split()[-1], 16)
            c.check(mine == theirs, "gva2gpa %#x: QEMU says %s, the walker %s" % (va, text.strip(), mine))
        qemu_writable = sum(end - start for start, end, _u, w in pagetables.parse_info_mem(q.hmp("info mem")) if w)
        mine_writable = sum(m.size for m in maps if m.writable and not m.recursive)
        recursive = [m for m in maps if m.recursive]
        c.check(qemu_writable >= mine_writable and
                qemu_writable - mine_writable <= sum(m.size for m in recursive),
                "writable bytes: QEMU's info mem %#x vs the walker %#x" % (qemu_writable, mine_writable))

        # --- 2. after the kernel has finished ----------------------------------------------------
        gdb.detach()
        deadline = time.monotonic() + a.timeout
        while not re.search(a.final, serial()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        c.check(re.search(a.final, serial()) is not None, "the kernel never printed %r" % a.final)
        if proc.poll() is None:
            regs = q.registers()
            maps = pagetables.walk(read, regs["CR3"], pat=info["pat"])
            check_tables(c, "once the kernel settled in its shell", maps, segs, guard_page)
            compare_kernel_view(c, serial(), maps, regs["CR3"])
            check_pics(c, q.hmp("info pic"))
        q.close()
    except (gdbstub.GdbError, qmp.QmpError, bootinfo.BootInfoError, KeyError) as e:
        c.check(False, "inspection failed: %s: %s" % (type(e).__name__, e))
    finally:
        boot_test.stop(proc)
        shutil.rmtree(boot_test.socket_dir(work), ignore_errors=True)

    text = serial()
    for bad in ("PANIC", "error:"):
        c.check(bad not in text, "the serial log contains %r" % bad)
    outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if outputs:
        with open(os.path.join(outputs, "serial.log"), "w") as f:
            f.write(text)
    print("---- serial log ----\n%s\n---- end of serial log ----" % text.rstrip())
    if c.failures:
        print("FAILED: %d of %d checks" % (len(c.failures), len(c.failures) + c.passed))
        return 1
    print("PASS: %d checks" % c.passed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
