// loader.secure_boot: decoding and describing the Secure Boot variables.
module;

#include <ktl/macros.h>

module loader.secure_boot;

import ktl;
import efi;

namespace loader {

namespace {

SecureBoot classify(const efi::Result<ktl::u8>& secure_boot, const efi::Result<ktl::u8>& setup_mode) {
  if (secure_boot.is_err()) {
    return secure_boot.error() == efi::Status::NotFound ? SecureBoot::Disabled : SecureBoot::Unknown;
  }
  switch (secure_boot.value()) {
    case 0: return SecureBoot::Disabled;
    case 1:
      // Secure Boot is only ever on in user mode; a firmware claiming both is not believed.
      if (setup_mode.is_ok() && setup_mode.value() != 0) return SecureBoot::Unknown;
      return SecureBoot::Enabled;
    default: return SecureBoot::Unknown;  // values other than 0 and 1 are reserved
  }
}

}  // namespace

SecureBootState decode_secure_boot(efi::Result<ktl::u8> secure_boot, efi::Result<ktl::u8> setup_mode) {
  SecureBoot state = classify(secure_boot, setup_mode);
  return SecureBootState{state, ktl::move(secure_boot), ktl::move(setup_mode)};
}

void format_value(ktl::FormatSink& sink, const SecureBootState& s, const ktl::FormatSpec&) {
  sink.write(to_string(s.state));
  const bool setup = s.setup_mode.is_ok() && s.setup_mode.value() == 1;
  switch (s.state) {
    case SecureBoot::Enabled: return;
    case SecureBoot::Disabled:
      if (s.secure_boot.is_err()) {
        sink.write(" (no SecureBoot variable: this firmware does not implement Secure Boot)");
      } else if (setup) {
        sink.write(" (setup mode: no platform key enrolled)");
      }
      return;
    case SecureBoot::Unknown:
      if (s.secure_boot.is_err()) {
        ktl::format_to(sink, " (SecureBoot: {})", efi::to_string(s.secure_boot.error()));
      } else if (s.secure_boot.value() > 1) {
        ktl::format_to(sink, " (SecureBoot = {}, a reserved value)", s.secure_boot.value());
      } else {
        ktl::format_to(sink, " (SecureBoot = 1 but SetupMode = {})", s.setup_mode.value());
      }
      return;
  }
}

}  // namespace loader
