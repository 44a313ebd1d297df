//! Generates bindings to the system DPDK and builds the C shim.
//!
//! DPDK comes from pkg-config (`libdpdk`, Debian's `libdpdk-dev`, 22.11). We
//! link the shared libraries: DPDK's EAL then loads the PMDs (net_pcap,
//! net_ring, ...) from its driver directory by itself. Static linking would
//! drop the PMD constructors unless whole-archive linking is used.

use std::env;
use std::path::PathBuf;

const INSTALL_HINT: &str = "install DPDK 22.11 development files and libclang: \
     `apt-get install libdpdk-dev clang libclang-dev pkg-config` (or run scripts/test.sh as root)";

/// Integer macros built with `RTE_BIT64()` are 64-bit flags; bindgen's macro
/// fallback would otherwise give them `u32` or negative `i64` types.
#[derive(Debug)]
struct U64Flags;

impl bindgen::callbacks::ParseCallbacks for U64Flags {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        const U64_PREFIXES: &[&str] = &[
            "RTE_ETH_RSS_",
            "RTE_ETH_RX_OFFLOAD_",
            "RTE_ETH_TX_OFFLOAD_",
            "RTE_MBUF_F_",
            "RTE_ETH_LINK_SPEED_",
        ];
        U64_PREFIXES
            .iter()
            .any(|p| name.starts_with(p))
            .then_some(bindgen::callbacks::IntKind::U64)
    }
}

fn main() {
    println!("cargo::rerun-if-changed=shim/shim.c");
    println!("cargo::rerun-if-changed=shim/shim.h");
    println!("cargo::rerun-if-changed=shim/wrapper.h");
    println!("cargo::rerun-if-changed=build.rs");

    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            println!("cargo::error=DPDK not found through pkg-config ({e}); {INSTALL_HINT}");
            return;
        }
    };
    let cflags = pkg_config_cflags();

    let mut shim = cc::Build::new();
    shim.file("shim/shim.c").opt_level(3).warnings(false);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("ctrack_dpdk_shim");

    let builder = bindgen::Builder::default()
        .header("shim/wrapper.h")
        .clang_args(&cflags)
        .clang_macro_fallback()
        .parse_callbacks(Box::new(U64Flags))
        .wrap_unsafe_ops(true)
        .generate_comments(false)
        .layout_tests(true)
        .derive_default(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // Packed, with bitfields and a flexible array; pulled in through
        // rte_ethdev.h -> rte_flow.h (rust-lang/rust-bindgen#1538).
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_version")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_lookup")
        .allowlist_function("rte_ring_create")
        .allowlist_function("rte_ring_free")
        .allowlist_function("rte_hash_.*")
        .allowlist_function("rte_thash_.*")
        .allowlist_function("rte_acl_.*")
        .allowlist_function("ctrack_.*")
        .allowlist_function("rte_lpm_(create|free|add|delete|delete_all)")
        .allowlist_function("rte_lpm6_(create|free|add|delete|delete_all|lookup|lookup_bulk_func)")
        .allowlist_type("rte_lpm6?_config")
        .allowlist_function("rte_ip_frag_(table_create|table_destroy|free_death_row)")
        .allowlist_type("rte_ip_frag_death_row")
        .allowlist_var("RTE_IP_FRAG_.*")
        .allowlist_var("CTRACK_FRAG_.*")
        .allowlist_var("RTE_LPM6?_.*")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_mempool")
        .allowlist_type("rte_ring")
        .allowlist_type("rte_hash_parameters")
        .allowlist_type("rte_eth_.*")
        .allowlist_type("rte_acl_.*")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MAX_.*")
        .allowlist_var("RTE_HASH_.*")
        .allowlist_var("RTE_ACL_.*")
        .allowlist_var("RTE_MEMPOOL_CACHE_MAX_SIZE")
        .allowlist_var("RTE_VER_.*")
        .allowlist_var("RING_F_.*")
        // Defined without the RTE_ prefix.
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("SOCKET_ID_ANY");

    // bindgen panics when it cannot load libclang; turn that into one line.
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            println!("cargo::error=bindgen failed on the DPDK headers ({e}); {INSTALL_HINT}");
            return;
        }
        Err(_) => {
            println!("cargo::error=bindgen could not run (libclang missing?); {INSTALL_HINT}");
            return;
        }
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs to OUT_DIR");

    // Shared libdpdk: the link flags come from the pkg-config probe above.
    for path in &dpdk.link_paths {
        println!("cargo::rustc-link-search=native={}", path.display());
    }
}

/// The full `pkg-config --cflags libdpdk`: it carries `-include rte_config.h`
/// and `-march=corei7`, which both bindgen and the shim need (include paths
/// alone make gcc fail on always_inline SSE intrinsics in the shim).
fn pkg_config_cflags() -> Vec<String> {
    let out = std::process::Command::new(env::var("PKG_CONFIG").unwrap_or("pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
