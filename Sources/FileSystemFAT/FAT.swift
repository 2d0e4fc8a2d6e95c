import DiskImage

/// The FAT family (FAT12, FAT16, FAT32 with VFAT long names): on-disk records and their decoding.
///
/// Layout facts follow Microsoft's "FAT: General Overview of On-Disk Format" (version 1.03); where
/// Linux's fat driver (fs/fat) behaves differently, this module follows Linux, because the goal is
/// to show what the firmware's own kernel shows. Each deviation is named where it is made.
public enum FAT {
    /// The FAT width, decided by the cluster count (never by the `BS_FilSysType` string).
    public enum Kind: String, Sendable, Equatable {
        case fat12 = "FAT12", fat16 = "FAT16", fat32 = "FAT32"

        /// Entries whose value is at least this mean "end of chain" (Linux FAT_ENT_EOF, spec
        /// "EOC mark" range 0xFF8..0xFFF scaled to the width).
        var endOfChain: UInt32 {
            switch self {
            case .fat12: 0xFF8
            case .fat16: 0xFFF8
            case .fat32: 0x0FFF_FFF8
            }
        }

        /// The "bad cluster" mark.
        var badCluster: UInt32 {
            switch self {
            case .fat12: 0xFF7
            case .fat16: 0xFFF7
            case .fat32: 0x0FFF_FFF7
            }
        }
    }

    /// Clusters below this count make a FAT12 volume; below `maximumFAT16Clusters + 1`, FAT16.
    static let fat12ClusterLimit: UInt64 = 4085
    static let fat16ClusterLimit: UInt64 = 65525
    /// The largest cluster count a FAT32 volume can address (0x0FFFFFF5 .. are reserved marks).
    static let fat32MaximumClusters: UInt64 = 0x0FFF_FFF5 - 2

    /// The BIOS parameter block in sector 0 (the "boot sector"), with the geometry derived from it.
    public struct BootSector: Sendable, Equatable {
        /// BPB_BytsPerSec (offset 11, u16): 512, 1024, 2048 or 4096.
        public var bytesPerSector: UInt16
        /// BPB_SecPerClus (offset 13, u8): a power of two.
        public var sectorsPerCluster: UInt8
        /// BPB_RsvdSecCnt (offset 14, u16): sectors before the first FAT, never 0.
        public var reservedSectors: UInt16
        /// BPB_NumFATs (offset 16, u8): copies of the FAT, at least 1.
        public var fatCount: UInt8
        /// BPB_RootEntCnt (offset 17, u16): 32-byte entries of the fixed FAT12/16 root directory.
        public var rootEntryCount: UInt16
        /// BPB_TotSec16 (offset 19, u16), or 0 when BPB_TotSec32 holds the count.
        public var totalSectors16: UInt16
        /// BPB_Media (offset 21, u8): 0xF0 or 0xF8...0xFF.
        public var media: UInt8
        /// BPB_FATSz16 (offset 22, u16): sectors per FAT; 0 on FAT32, where BPB_FATSz32 holds it.
        public var fatSize16: UInt16
        /// BPB_TotSec32 (offset 32, u32).
        public var totalSectors32: UInt32
        /// BPB_FATSz32 (offset 36, u32), FAT32 layout only (0 otherwise).
        public var fatSize32: UInt32
        /// BPB_RootClus (offset 44, u32), FAT32 layout only: first cluster of the root directory.
        public var rootCluster32: UInt32
        /// BS_BootSig (offset 38 on FAT12/16, 66 on FAT32): 0x29 when the label and serial follow.
        public var extendedBootSignature: UInt8
        /// BS_VolID (offset 39 / 67, u32).
        public var volumeID: UInt32
        /// BS_VolLab (offset 43 / 71, 11 bytes), raw.
        public var volumeLabel: [UInt8]

        // Derived geometry, all validated against each other in `init`.
        public var kind: Kind
        /// Data clusters (numbered 2 ..< clusterCount + 2).
        public var clusterCount: UInt32
        public var totalSectors: UInt64
        public var sectorsPerFAT: UInt64
        /// Bytes per cluster.
        public var clusterSize: UInt32
        /// Byte offset of the first FAT.
        public var fatOffset: UInt64
        /// Bytes in one FAT.
        public var fatBytes: UInt64
        /// Byte offset and length of the fixed root directory (FAT12/16; length 0 on FAT32).
        public var rootDirectoryOffset: UInt64
        public var rootDirectoryBytes: UInt64
        /// Byte offset of cluster 2.
        public var dataOffset: UInt64

        /// Decodes and validates sector 0 (at least its first 512 bytes).
        public init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "FAT boot sector")
            bytesPerSector = try c.u16le(at: 11)
            sectorsPerCluster = try c.u8(at: 13)
            reservedSectors = try c.u16le(at: 14)
            fatCount = try c.u8(at: 16)
            rootEntryCount = try c.u16le(at: 17)
            totalSectors16 = try c.u16le(at: 19)
            media = try c.u8(at: 21)
            fatSize16 = try c.u16le(at: 22)
            totalSectors32 = try c.u32le(at: 32)
            let fat32Layout = fatSize16 == 0
            fatSize32 = fat32Layout ? try c.u32le(at: 36) : 0
            rootCluster32 = fat32Layout ? try c.u32le(at: 44) : 0
            let ext = fat32Layout ? 64 : 36
            extendedBootSignature = try c.u8(at: ext + 2)
            volumeID = try c.u32le(at: ext + 3)
            volumeLabel = try c.array(at: ext + 7, count: 11)

            func bad(_ message: String) -> FWError { FWError(.corrupt, "FAT boot sector: \(message)") }
            guard (512...4096).contains(bytesPerSector), bytesPerSector & (bytesPerSector - 1) == 0 else {
                throw bad("bytes per sector \(bytesPerSector) is not a power of two from 512 to 4096")
            }
            guard sectorsPerCluster != 0, sectorsPerCluster & (sectorsPerCluster - 1) == 0 else {
                throw bad("sectors per cluster \(sectorsPerCluster) is not a power of two")
            }
            guard reservedSectors > 0 else { throw bad("reserved sector count is 0") }
            guard fatCount >= 1 else { throw bad("number of FATs is 0") }
            // Linux's fat_valid_media: 0xF0 or 0xF8...0xFF.
            guard media == 0xF0 || media >= 0xF8 else {
                throw bad("media descriptor 0x\(String(media, radix: 16)) is not a FAT media byte")
            }
            let bps = UInt64(bytesPerSector)
            totalSectors = totalSectors16 != 0 ? UInt64(totalSectors16) : UInt64(totalSectors32)
            guard totalSectors > 0 else { throw bad("total sector count is 0") }
            sectorsPerFAT = fat32Layout ? UInt64(fatSize32) : UInt64(fatSize16)
            guard sectorsPerFAT > 0 else { throw bad("sectors per FAT is 0") }
            if !fat32Layout, rootEntryCount == 0 {
                throw bad("FAT12/16 layout (BPB_FATSz16 != 0) with no root directory entries")
            }
            // RootDirSectors = ceil(RootEntCnt * 32 / BytsPerSec): all values fit in UInt64.
            let rootDirSectors = (UInt64(rootEntryCount) * 32 + bps - 1) / bps
            let fatRegion = UInt64(fatCount) * sectorsPerFAT
            let dataStart = UInt64(reservedSectors) + fatRegion + rootDirSectors
            guard dataStart < totalSectors else {
                throw bad("data region starts at sector \(dataStart), past the \(totalSectors) sectors of the volume")
            }
            let clusters = (totalSectors - dataStart) / UInt64(sectorsPerCluster)
            guard clusters >= 1 else { throw bad("no data clusters") }
            if fat32Layout {
                // Linux decides FAT32 by BPB_FATSz16 == 0 and reads the FAT32 fields; the spec would
                // call a FAT32 layout with < 65525 clusters FAT16, which mkfs.fat -F 32 can make and
                // Linux mounts as FAT32. Follow Linux.
                guard clusters <= FAT.fat32MaximumClusters else {
                    throw bad("\(clusters) clusters is more than FAT32 can address")
                }
                kind = .fat32
            } else if clusters < FAT.fat12ClusterLimit {
                kind = .fat12
            } else if clusters < FAT.fat16ClusterLimit {
                kind = .fat16
            } else {
                throw bad("\(clusters) clusters is too many for the FAT12/16 layout (BPB_FATSz16 != 0)")
            }
            clusterCount = UInt32(clusters)
            clusterSize = UInt32(bytesPerSector) * UInt32(sectorsPerCluster)
            fatOffset = UInt64(reservedSectors) * bps
            fatBytes = sectorsPerFAT * bps
            // The FAT must have an entry for every cluster (2 ..< clusters + 2).
            let entryBits: UInt64 = kind == .fat12 ? 12 : kind == .fat16 ? 16 : 32
            guard fatBytes * 8 / entryBits >= clusters + 2 else {
                throw bad("a FAT of \(sectorsPerFAT) sectors cannot hold \(clusters) clusters")
            }
            rootDirectoryOffset = (UInt64(reservedSectors) + fatRegion) * bps
            rootDirectoryBytes = kind == .fat32 ? 0 : UInt64(rootEntryCount) * 32
            dataOffset = dataStart * bps
            if kind == .fat32 {
                guard rootCluster32 >= 2, UInt64(rootCluster32) < clusters + 2 else {
                    throw bad("root directory cluster \(rootCluster32) is outside clusters 2...\(clusters + 1)")
                }
            }
        }

        /// The last valid cluster number.
        public var lastCluster: UInt32 { clusterCount + 1 }

        /// Byte offset of a data cluster (the caller checked 2 <= cluster <= lastCluster).
        func offset(ofCluster cluster: UInt32) -> UInt64 {
            dataOffset + UInt64(cluster - 2) * UInt64(clusterSize)
        }

        /// The label from the boot sector ("NO NAME" and empty mean none), when BS_BootSig says
        /// the field is present.
        public var bootSectorLabel: String? {
            guard extendedBootSignature == 0x29 else { return nil }
            let text = FAT.shortNameText(volumeLabel, lowercaseBase: false, lowercaseExtension: false, asLabel: true)
            return text.isEmpty || text == "NO NAME" ? nil : text
        }
    }
}
