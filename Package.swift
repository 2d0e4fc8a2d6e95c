// swift-tools-version: 6.0
// fwassemble: raw multi-partition firmware disk -> one faithful rootfs.tar.gz.
// Modules follow the data flow: DiskImage -> PartitionTable -> FileSystems (+ one module per
// format) -> MountPlan -> Assembly -> Archive, with DockerState reading the assembled namespace
// and FirmwareAssembler as the public facade the CLI (and later the C ABI) calls.
import PackageDescription

func cLibrary(_ name: String, pkgConfig: String, apt: String) -> Target {
    .systemLibrary(name: name, pkgConfig: pkgConfig, providers: [.apt([apt])])
}

let package = Package(
    name: "fwassemble",
    products: [
        .library(name: "FirmwareAssembler", targets: ["FirmwareAssembler"]),
        .executable(name: "fwassemble", targets: ["fwassemble"]),
        // The C ABI (include/fwassemble.h), linked as libCFwassemble.so; `make build` links
        // libfwassemble.so to it (SwiftPM cannot name a library like the executable).
        .library(name: "CFwassemble", type: .dynamic, targets: ["CFwassemble"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries (Debian -dev packages), wrapped as system-library targets.
        cLibrary("CBlkid", pkgConfig: "blkid", apt: "libblkid-dev"),
        cLibrary("CExt2fs", pkgConfig: "ext2fs", apt: "e2fslibs-dev"),
        cLibrary("CZlib", pkgConfig: "zlib", apt: "zlib1g-dev"),
        cLibrary("CDeflate", pkgConfig: "libdeflate", apt: "libdeflate-dev"),
        cLibrary("CLZ4", pkgConfig: "liblz4", apt: "liblz4-dev"),
        cLibrary("CZstd", pkgConfig: "libzstd", apt: "libzstd-dev"),
        cLibrary("CLZMA", pkgConfig: "liblzma", apt: "liblzma-dev"),
        cLibrary("CLZO", pkgConfig: "lzo2", apt: "liblzo2-dev"),
        cLibrary("CSQLite", pkgConfig: "sqlite3", apt: "libsqlite3-dev"),

        // 1. Bytes: raw image files and partition slices, read with pread.
        .target(name: "DiskImage"),
        // 1b. Container formats (qcow2, VMDK, VHD, VHDX, VDI; xz/gz/zst/zip/ova wrappers) read
        //     through the same ByteSource, detected by magic.
        .target(name: "DiskFormats", dependencies: ["DiskImage", "Codecs", "CLZMA"]),
        // 2. Partition tables (MBR/EBR, GPT, hybrid) and libblkid probing.
        .target(name: "PartitionTable", dependencies: ["DiskImage", "CBlkid"]),
        // 3. Decompressors shared by the filesystem readers.
        .target(name: "Codecs", dependencies: ["DiskImage", "CZlib", "CLZ4", "CZstd", "CLZMA", "CLZO"]),
        // 4. The filesystem reader interface, the sorted tree walk, and one module per format.
        .target(name: "FileSystems", dependencies: ["DiskImage"]),
        .target(name: "FileSystemExt4", dependencies: ["FileSystems", "DiskImage", "CExt2fs"]),
        .target(name: "FileSystemSquashFS", dependencies: ["FileSystems", "DiskImage", "Codecs"]),
        .target(name: "FileSystemEROFS", dependencies: ["FileSystems", "DiskImage", "Codecs"]),
        .target(name: "FileSystemFAT", dependencies: ["FileSystems", "DiskImage"]),
        .target(name: "FileSystemBtrfs", dependencies: ["FileSystems", "DiskImage", "Codecs"]),
        .target(name: "FileSystemF2FS", dependencies: ["FileSystems", "DiskImage", "Codecs"]),
        // Raw flash filesystems: JFFS2 (NOR and NAND logs).
        .target(name: "FileSystemJFFS2", dependencies: ["FileSystems", "DiskImage", "Codecs"]),
        // UBIFS, read from a UBI volume (PartitionTable's UBIVolume).
        .target(name: "FileSystemUBIFS", dependencies: ["FileSystems", "DiskImage", "Codecs"]),
        // Tar archives (OCI image layers) as read-only filesystems.
        .target(name: "FileSystemTar", dependencies: ["FileSystems", "DiskImage"]),
        // 5. The namespace engine: filesystems mounted at paths, binds, overlays (OverlayMerge),
        //    the one path resolver; itself a FileSystemReader that the one TreeWalk walks.
        .target(name: "Assembly", dependencies: ["FileSystems", "DiskImage"]),
        // 6. Mount plan: root slot from bootloader state, fstab, systemd units, firmware profiles;
        //    reads configuration through the namespace engine.
        .target(name: "MountPlan", dependencies: ["FileSystems", "FileSystemBtrfs", "Assembly", "DiskImage", "PartitionTable"]),
        // 6a. bbolt files (containerd's meta.db and snapshotter metadata.db), read-only from a ByteSource.
        .target(name: "BoltDB", dependencies: ["DiskImage"]),
        // 6a'. SQLite files (Podman 5's db.sql) through the system SQLite, read-only from a ByteSource
        //      (a VFS over it with an in-memory overlay: hot journals and WALs applied, nothing written).
        .target(name: "SQLiteDB", dependencies: ["DiskImage", "CSQLite"]),
        // 6b. Docker data-roots read from the assembled namespace (inventory, integrity, export):
        //     overlay2, the containerd store through BoltDB, Podman's store (BoltDB or SQLite state).
        .target(name: "DockerState", dependencies: ["FileSystems", "Assembly", "DiskImage", "DiskFormats", "BoltDB", "SQLiteDB", "FileSystemTar"]),
        // 7. Archive: streaming tar writer and parallel gzip.
        .target(name: "Archive", dependencies: ["FileSystems", "DiskImage", "CDeflate", "CZstd"]),
        // 7b. The booted namespace written as an ext4 filesystem image through libext2fs.
        .target(name: "Ext4Image", dependencies: ["FileSystems", "DiskImage", "CExt2fs"]),
        // 8. The facade: everything the CLI does goes through it.
        .target(name: "FirmwareAssembler", dependencies: [
            "DiskImage", "DiskFormats", "PartitionTable", "FileSystems", "FileSystemExt4", "FileSystemSquashFS",
            "FileSystemEROFS", "FileSystemFAT", "FileSystemBtrfs", "FileSystemF2FS", "FileSystemTar", "MountPlan", "Assembly", "Archive", "DockerState", "Ext4Image",
            "FileSystemJFFS2", "FileSystemUBIFS",
        ]),
        // 9. The C ABI over the facade: @_cdecl functions, no Swift types cross it.
        .target(name: "CFwassemble", dependencies: ["FirmwareAssembler", "DiskImage"]),
        .executableTarget(name: "fwassemble", dependencies: [
            "FirmwareAssembler",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "DiskImageTests", dependencies: ["DiskImage", "DiskFormats", "FirmwareAssembler", "TestSupport"]),
        .testTarget(name: "PartitionTableTests", dependencies: ["PartitionTable", "DiskImage", "TestSupport"]),
        .testTarget(name: "CodecsTests", dependencies: ["Codecs", "DiskImage", "CLZ4", "CLZMA", "TestSupport"]),
        .testTarget(name: "FileSystemsTests", dependencies: [
            "FileSystems", "FileSystemExt4", "FileSystemSquashFS", "FileSystemEROFS", "FileSystemFAT", "FileSystemF2FS",
            "FileSystemBtrfs", "FileSystemJFFS2", "FileSystemUBIFS", "PartitionTable", "DiskImage", "TestSupport",
        ]),
        .testTarget(name: "MountPlanTests", dependencies: ["MountPlan", "Assembly", "FileSystems", "DiskImage"]),
        .testTarget(name: "AssemblyTests", dependencies: ["Assembly", "MountPlan", "FileSystems", "FileSystemFAT", "DiskImage", "TestSupport"]),
        .testTarget(name: "ArchiveTests", dependencies: ["Archive", "FileSystems", "DiskImage", "TestSupport"]),
        .testTarget(name: "BoltDBTests", dependencies: ["BoltDB", "DiskImage", "TestSupport"]),
        .testTarget(name: "DockerStateTests", dependencies: [
            "DockerState", "BoltDB", "SQLiteDB", "Assembly", "MountPlan", "FileSystems", "DiskImage", "FirmwareAssembler", "TestSupport",
        ]),
        .testTarget(name: "CLITests", dependencies: ["FirmwareAssembler", "DiskImage", "TestSupport"]),
        .testTarget(name: "CAPITests", dependencies: ["CFwassemble", "FirmwareAssembler", "DiskImage", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["FirmwareAssembler", "TestSupport"]),
        .testTarget(name: "HostileTests", dependencies: [
            "TestSupport", "DiskImage", "PartitionTable", "FileSystems", "FileSystemExt4", "FileSystemSquashFS",
            "FileSystemEROFS", "FileSystemFAT", "FileSystemBtrfs", "FileSystemF2FS", "MountPlan", "Archive", "BoltDB", "SQLiteDB", "FileSystemTar", "Ext4Image", "Assembly", "DockerState",
            "FileSystemJFFS2", "FileSystemUBIFS",
        ]),
        .target(name: "TestSupport", dependencies: ["FileSystems", "CZlib"], path: "Tests/TestSupport"),
    ]
)
