import Codecs
import DiskImage

/// The squashfs 4.0 on-disk format (little-endian), as Linux's `fs/squashfs` and squashfs-tools
/// define it. Layout of an image, in order: superblock (96 bytes), compressor options (a metadata
/// block, when flagged), data blocks and fragment blocks, inode table, directory table, fragment
/// table, export table, id table, xattr tables. Tables are chains of metadata blocks (at most
/// 8 KiB each once decompressed) addressed by 64-bit references: bits 16..47 hold the byte offset
/// of a metadata block from its table's start, bits 0..15 the offset inside the decompressed block.
public enum SquashFS {
    /// "hsqs" read as a little-endian u32.
    static let magic: UInt32 = 0x7371_7368
    /// Decompressed size of a full metadata block.
    static let metadataBlockSize = 8192
    /// Bit 15 of a metadata block header: the block is stored uncompressed.
    static let metadataUncompressedBit: UInt16 = 0x8000
    /// Bit 24 of a data or fragment block size: the block is stored uncompressed.
    static let dataUncompressedBit: UInt32 = 1 << 24
    /// A fragment index, xattr index or table start meaning "none".
    static let invalidFragment: UInt32 = 0xFFFF_FFFF
    static let invalidXattr: UInt32 = 0xFFFF_FFFF
    static let invalidTable: UInt64 = 0xFFFF_FFFF_FFFF_FFFF
    /// Longest name in a directory entry (SQUASHFS_NAME_LEN).
    static let maximumNameLength = 256
    /// Entries per directory header (SQUASHFS_DIR_COUNT).
    static let maximumDirectoryHeaderCount = 256

    /// Compression ids of the superblock's `compression` field.
    public enum Compression: UInt16, Sendable {
        case gzip = 1, lzma = 2, lzo = 3, xz = 4, lz4 = 5, zstd = 6

        public var name: String {
            switch self {
            case .gzip: "gzip"
            case .lzma: "lzma"
            case .lzo: "lzo"
            case .xz: "xz"
            case .lz4: "lz4"
            case .zstd: "zstd"
            }
        }

        func decompressor() -> any Decompressor {
            switch self {
            case .gzip: Zlib()
            case .lzma: LegacyLZMA()
            case .lzo: LZO()
            case .xz: XZ()
            case .lz4: LZ4()
            case .zstd: Zstd()
            }
        }
    }

    /// Superblock flags (`flags`, offset 24).
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt16
        static let uncompressedInodes = Flags(rawValue: 0x0001)
        static let uncompressedData = Flags(rawValue: 0x0002)
        static let uncompressedFragments = Flags(rawValue: 0x0008)
        static let noFragments = Flags(rawValue: 0x0010)
        static let alwaysFragments = Flags(rawValue: 0x0020)
        static let duplicates = Flags(rawValue: 0x0040)
        static let exportable = Flags(rawValue: 0x0080)
        static let uncompressedXattrs = Flags(rawValue: 0x0100)
        static let noXattrs = Flags(rawValue: 0x0200)
        static let compressorOptions = Flags(rawValue: 0x0400)
        static let uncompressedIds = Flags(rawValue: 0x0800)
    }

    /// `struct squashfs_super_block`, 96 bytes at offset 0.
    struct SuperBlock: Sendable {
        static let size = 96

        /// s_magic, offset 0.
        var magic: UInt32
        /// inodes, offset 4: number of inodes.
        var inodeCount: UInt32
        /// mkfs_time, offset 8.
        var mkfsTime: UInt32
        /// block_size, offset 12: data block size, a power of two in 4 KiB...1 MiB.
        var blockSize: UInt32
        /// fragments, offset 16: entries in the fragment table.
        var fragmentCount: UInt32
        /// compression, offset 20.
        var compressionID: UInt16
        /// block_log, offset 22: log2(block_size).
        var blockLog: UInt16
        /// flags, offset 24.
        var flags: Flags
        /// no_ids, offset 26: entries in the id table.
        var idCount: UInt16
        /// s_major / s_minor, offsets 28 and 30: 4.0.
        var major: UInt16
        var minor: UInt16
        /// root_inode, offset 32: inode reference of the root directory.
        var rootInode: UInt64
        /// bytes_used, offset 40: image length (the source may be longer).
        var bytesUsed: UInt64
        /// id_table_start, offset 48: the id table's index (u64 metadata block addresses).
        var idTableStart: UInt64
        /// xattr_id_table_start, offset 56: the xattr id table's header, or all ones.
        var xattrIDTableStart: UInt64
        /// inode_table_start, offset 64.
        var inodeTableStart: UInt64
        /// directory_table_start, offset 72.
        var directoryTableStart: UInt64
        /// fragment_table_start, offset 80: the fragment table's index, or all ones.
        var fragmentTableStart: UInt64
        /// lookup_table_start, offset 88: the export table's index, or all ones (unused here).
        var lookupTableStart: UInt64

        init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "squashfs superblock")
            magic = try c.u32le(at: 0)
            inodeCount = try c.u32le(at: 4)
            mkfsTime = try c.u32le(at: 8)
            blockSize = try c.u32le(at: 12)
            fragmentCount = try c.u32le(at: 16)
            compressionID = try c.u16le(at: 20)
            blockLog = try c.u16le(at: 22)
            flags = Flags(rawValue: try c.u16le(at: 24))
            idCount = try c.u16le(at: 26)
            major = try c.u16le(at: 28)
            minor = try c.u16le(at: 30)
            rootInode = try c.u64le(at: 32)
            bytesUsed = try c.u64le(at: 40)
            idTableStart = try c.u64le(at: 48)
            xattrIDTableStart = try c.u64le(at: 56)
            inodeTableStart = try c.u64le(at: 64)
            directoryTableStart = try c.u64le(at: 72)
            fragmentTableStart = try c.u64le(at: 80)
            lookupTableStart = try c.u64le(at: 88)
        }

        /// Checks everything later reads rely on: magic, version, block size, table order.
        func validate(sourceSize: UInt64) throws -> Compression {
            guard magic == SquashFS.magic else {
                throw FWError.corrupt("not a squashfs 4 image: magic is 0x\(String(magic, radix: 16)), expected \"hsqs\"")
            }
            guard major == 4, minor == 0 else {
                throw FWError.unsupported("squashfs version \(major).\(minor) (only 4.0 is supported)")
            }
            guard blockSize >= 4096, blockSize <= 1 << 20, blockSize & (blockSize - 1) == 0 else {
                throw FWError.corrupt("squashfs block size \(blockSize) is not a power of two in 4 KiB...1 MiB")
            }
            guard UInt32(1) << UInt32(min(blockLog, 31)) == blockSize else {
                throw FWError.corrupt("squashfs block_log \(blockLog) does not match the block size \(blockSize)")
            }
            guard let compression = Compression(rawValue: compressionID) else {
                throw FWError.unsupported("squashfs compression id \(compressionID) is unknown")
            }
            guard bytesUsed >= UInt64(SuperBlock.size), bytesUsed <= sourceSize else {
                throw FWError.corrupt("squashfs bytes_used \(bytesUsed) does not fit in the \(sourceSize)-byte source (truncated image?)")
            }
            guard idCount > 0 else { throw FWError.corrupt("squashfs id table is empty (no_ids 0)") }
            guard inodeTableStart >= UInt64(SuperBlock.size), inodeTableStart < directoryTableStart,
                  directoryTableStart < bytesUsed, idTableStart < bytesUsed else {
                throw FWError.corrupt("squashfs table addresses out of order or past bytes_used (inodes \(inodeTableStart), directories \(directoryTableStart), ids \(idTableStart), bytes_used \(bytesUsed))")
            }
            for (name, start) in [("fragment", fragmentTableStart), ("xattr id", xattrIDTableStart)] where start != SquashFS.invalidTable {
                guard start < bytesUsed else {
                    throw FWError.corrupt("squashfs \(name) table at \(start) is past bytes_used \(bytesUsed)")
                }
            }
            return compression
        }
    }

    /// The compressor options metadata block that follows the superblock when
    /// `COMPRESSOR_OPTIONS` is set. Only checked, since every decoder reads what it needs from
    /// the compressed data itself.
    struct CompressorOptions: Sendable, CustomStringConvertible {
        var description: String

        init(_ bytes: [UInt8], compression: Compression) throws {
            let c = ByteCursor(bytes, context: "squashfs \(compression.name) compressor options")
            switch compression {
            case .gzip:
                // compression_level u32 @0, window_size u16 @4, strategy u16 @6.
                let level = try c.u32le(at: 0), window = try c.u16le(at: 4)
                guard (1...9).contains(level), (8...15).contains(window) else {
                    throw FWError.corrupt("squashfs gzip options: level \(level), window \(window) out of range")
                }
                description = "level \(level), window \(window)"
            case .xz:
                // dictionary_size u32 @0, flags (BCJ filters) u32 @4.
                let dictionary = try c.u32le(at: 0), filters = try c.u32le(at: 4)
                description = "dictionary \(dictionary), filters 0x\(String(filters, radix: 16))"
            case .lz4:
                // version u32 @0 (1 = LZ4_LEGACY block format), flags u32 @4 (1 = HC).
                let version = try c.u32le(at: 0), flags = try c.u32le(at: 4)
                guard version == 1 else {
                    throw FWError.unsupported("squashfs lz4 format version \(version) (only 1 is defined)")
                }
                description = flags & 1 != 0 ? "lz4hc" : "lz4"
            case .zstd:
                // compression_level u32 @0.
                description = "level \(try c.u32le(at: 0))"
            case .lzo:
                // algorithm u32 @0, compression_level u32 @4.
                description = "algorithm \(try c.u32le(at: 0)), level \(try c.u32le(at: 4))"
            case .lzma:
                throw FWError.corrupt("squashfs lzma has no compressor options, but the flag is set")
            }
        }
    }
}
