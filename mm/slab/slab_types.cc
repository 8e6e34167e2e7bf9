// mm.slab.types: formatting of slabinfo lines.
module mm.slab.types;

import ktl;

namespace mm {

void format_value(ktl::FormatSink& sink, const SlabInfo& i, const ktl::FormatSpec&) {
  ktl::format_to(sink, "{:<24} {:>8} {:>8} {:>6} {:>6} {:>4} {:>6} {:>6} {:>8} {:>8}", i.name, i.active,
                 i.objects, i.object_size, i.stride, i.objects_per_slab, i.frames_per_slab, i.slabs, i.frames,
                 i.waste_bytes);
}

}  // namespace mm
