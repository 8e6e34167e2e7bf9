"""x86_64 4-level page tables read from outside the guest, as a list of mappings.

    maps = walk(read_phys, cr3)           # read_phys(addr, size) -> bytes, e.g. Qmp.read_phys
    for m in maps: m.va, m.pa, m.size, m.writable, m.executable, m.user, m.globl, m.cache

Why not QEMU's `info tlb`: it prints each leaf entry's own bits, not the effective permission
(NX is ORed and W ANDed down the levels; a recursive slot makes that matter), and it does not
say whether a "P" entry is 2 MiB or 1 GiB. This walker does what the MMU does. `info mem` (parsed
by parse_info_mem) is QEMU's own effective view without NX, used to cross-check this one.

A PML4 entry that points back at the root (the recursive slot) is reported once as a mapping
with recursive=True instead of being descended (its contents are the tables themselves).
"""
import collections
import re
import struct

PRESENT, WRITABLE, USER, PWT, PCD, ACCESSED, DIRTY, PS, GLOBAL = (1 << i for i in range(9))
PAT_4K = 1 << 7
PAT_LARGE = 1 << 12
NX = 1 << 63
ADDR = 0x000f_ffff_ffff_f000

# The PAT the Ferrite loader programs (BootInfo.pat): index -> memory type.
FERRITE_PAT = 0x0007_0106_0007_0406
PAT_TYPES = {0: "UC", 1: "WC", 4: "WT", 5: "WP", 6: "WB", 7: "UC-"}

Mapping = collections.namedtuple(
    "Mapping", "va pa size writable executable user globl cache pat_index recursive")


def canonical(va):
    return va | 0xffff_0000_0000_0000 if va & (1 << 47) else va


def pat_type(pat, index):
    return PAT_TYPES.get((pat >> (8 * index)) & 0xff, "?")


def walk(read_phys, cr3, pat=FERRITE_PAT, nx_enabled=True):
    """All present leaf mappings reachable from `cr3`, sorted by virtual address."""
    cache = {}

    def table(phys):
        if phys not in cache:
            cache[phys] = struct.unpack("<512Q", read_phys(phys, 4096))
        return cache[phys]

    root = cr3 & ADDR
    out = []

    def descend(phys, level, va_base, writable, nx, user):
        shift = 12 + 9 * (level - 1)
        for i, e in enumerate(table(phys)):
            if not e & PRESENT:
                continue
            va = canonical(va_base | (i << shift))
            w = writable and bool(e & WRITABLE)
            x = nx or (nx_enabled and bool(e & NX))
            u = user and bool(e & USER)
            if level == 4 and (e & ADDR) == root:
                out.append(Mapping(va, root, 1 << shift, w, not x, u, False, "WB", 0, True))
                continue
            leaf = level == 1 or (level in (2, 3) and e & PS)
            if not leaf:
                descend(e & ADDR, level - 1, va_base | (i << shift), w, x, u)
                continue
            size = 1 << shift
            pat_bit = PAT_4K if level == 1 else PAT_LARGE
            index = (4 if e & pat_bit else 0) | (2 if e & PCD else 0) | (1 if e & PWT else 0)
            out.append(Mapping(va, e & ADDR & ~(size - 1), size, w, not x, u, bool(e & GLOBAL),
                               pat_type(pat, index), index, False))

    descend(root, 4, 0, True, False, True)
    return sorted(out, key=lambda m: m.va)


def lookup(mappings, va):
    """The mapping covering `va`, or None (unmapped)."""
    for m in mappings:
        if m.va <= va < m.va + m.size:
            return m
    return None


def translate(mappings, va):
    m = lookup(mappings, va)
    return None if m is None else m.pa + (va - m.va)


def coalesce(mappings):
    """Merges virtually and physically contiguous mappings with equal attributes (for printing)."""
    out = []
    for m in mappings:
        if out:
            p = out[-1]
            if (p.va + p.size == m.va and p.pa + p.size == m.pa and
                    p[3:] == m[3:] and not m.recursive):
                out[-1] = p._replace(size=p.size + m.size)
                continue
        out.append(m)
    return out


def describe(m):
    flags = ("W" if m.writable else "-") + ("X" if m.executable else "-") + ("U" if m.user else "-") + \
        ("G" if m.globl else "-")
    what = "recursive slot" if m.recursive else "pa %#014x %s" % (m.pa, m.cache)
    return "%#018x %#12x %s %s" % (m.va, m.size, flags, what)


def parse_info_mem(text):
    """QEMU's `info mem` (x86_64): [(start, end, user, writable)] of present ranges."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-])r([w-])", line.strip())
        if m:
            out.append((int(m.group(1), 16), int(m.group(2), 16), m.group(4) == "u", m.group(5) == "w"))
    return out


# --- the kernel's own view (kernel/vmview.cppm, printed with pagetables=dump) ---------------------

VM_LINE = re.compile(r"vm: (0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) ([W-])([X-])([U-])([G-]) (WB|WT|WC|UC)$", re.M)


def parse_vm_block(text):
    """The kernel's "vm:" block: {"root", "ranges": [(va, pa, size, w, x, u, g, cache)],
    "recursive_slot", "leaves", "count"}, or None if the log has no complete block."""
    begin = re.search(r"vm: begin page tables root=(0x[0-9a-f]+) format=(\S+)", text)
    end = re.search(r"vm: end ranges=(\d+) leaves=(\d+) bytes=(0x[0-9a-f]+)", text)
    if not begin or not end or end.start() < begin.start():
        return None
    body = text[begin.end():end.start()]
    ranges = [(int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16), m.group(4) == "W",
               m.group(5) == "X", m.group(6) == "U", m.group(7) == "G", m.group(8))
              for m in VM_LINE.finditer(body)]
    slot = re.search(r"vm: recursive slot=(\d+)", body)
    return {"root": int(begin.group(1), 16), "format": begin.group(2), "ranges": ranges,
            "recursive_slot": int(slot.group(1)) if slot else None, "count": int(end.group(1)),
            "leaves": int(end.group(2)), "bytes": int(end.group(3), 16)}


def kernel_view_of(mappings):
    """This walker's mappings in the kernel's terms: recursive slots left out, the memory type as
    mm::CacheMode names it (UC- and UC are both UC), leaves that continue each other virtually and
    physically with equal attributes merged. Comparable with parse_vm_block()["ranges"]."""
    out = []
    for m in mappings:
        if m.recursive:
            continue
        cache = "UC" if m.cache in ("UC", "UC-") else m.cache
        r = (m.va, m.pa, m.size, m.writable, m.executable, m.user, m.globl, cache)
        if out:
            p = out[-1]
            if p[0] + p[2] == r[0] and p[1] + p[2] == r[1] and p[3:] == r[3:]:
                out[-1] = p[:2] + (p[2] + r[2],) + p[3:]
                continue
        out.append(r)
    return out


def describe_range(r):
    va, pa, size, w, x, u, g, cache = r
    return "%#018x %#015x %#013x %s%s%s%s %s" % (va, pa, size, "W" if w else "-", "X" if x else "-",
                                                   "U" if u else "-", "G" if g else "-", cache)
