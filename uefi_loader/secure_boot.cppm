// loader.secure_boot: the firmware's Secure Boot state, decoded from its SecureBoot and SetupMode
// variables (EFI_GLOBAL_VARIABLE; UEFI 2.10 §3.3 "Globally Defined Variables" and §32.3).
//
//   SecureBoot = 1   the firmware verifies every image it starts against db/dbx (it did so for
//                    this loader); only possible in user mode (SetupMode = 0)
//   SecureBoot = 0   it does not; SetupMode = 1 says why: no platform key (PK) is enrolled
//   no SecureBoot    firmware without Secure Boot support (EFI_NOT_FOUND): it verifies nothing
//
// Pure: the loader passes in what GetVariable returned (efi::RuntimeServices::get_byte_variable),
// host tests pass in every combination.
module;

#include <ktl/macros.h>

export module loader.secure_boot;

import ktl;
import efi;

export namespace loader {

enum class SecureBoot : ktl::u8 { Enabled, Disabled, Unknown };

[[nodiscard]] constexpr const char* to_string(SecureBoot s) {
  switch (s) {
    case SecureBoot::Enabled: return "enabled";
    case SecureBoot::Disabled: return "disabled";
    case SecureBoot::Unknown: return "unknown";
  }
  return "unknown";
}

struct SecureBootState {
  SecureBoot state;
  efi::Result<ktl::u8> secure_boot;  // the SecureBoot variable, or why it could not be read
  efi::Result<ktl::u8> setup_mode;   // the SetupMode variable, or why it could not be read
};

// Unknown if SecureBoot cannot be read (other than EFI_NOT_FOUND), holds a reserved value, or
// contradicts SetupMode (SecureBoot = 1 in setup mode).
[[nodiscard]] SecureBootState decode_secure_boot(efi::Result<ktl::u8> secure_boot,
                                                 efi::Result<ktl::u8> setup_mode);

// The state and why: "enabled", "disabled (setup mode: no platform key enrolled)",
// "unknown (SecureBoot: EFI_DEVICE_ERROR)", ... (the loader prints "Secure Boot {}").
void format_value(ktl::FormatSink& sink, const SecureBootState& s, const ktl::FormatSpec& spec);

}  // namespace loader
