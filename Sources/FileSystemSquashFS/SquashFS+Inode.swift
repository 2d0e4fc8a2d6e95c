import DiskImage
import FileSystems

extension SquashFS {
    /// Inode types (`inode_type`): basic 1...7, extended ("l") 8...14.
    enum InodeType: UInt16 {
        case directory = 1, regular, symlink, blockDevice, characterDevice, fifo, socket
        case longDirectory, longRegular, longSymlink, longBlockDevice, longCharacterDevice, longFifo, longSocket

        var fileType: FileType {
            switch self {
            case .directory, .longDirectory: .directory
            case .regular, .longRegular: .regular
            case .symlink, .longSymlink: .symlink
            case .blockDevice, .longBlockDevice: .blockDevice
            case .characterDevice, .longCharacterDevice: .characterDevice
            case .fifo, .longFifo: .fifo
            case .socket, .longSocket: .socket
            }
        }
    }

    /// `struct squashfs_base_inode`, the 16 bytes every inode starts with.
    struct InodeHeader {
        static let size = 16
        /// inode_type, offset 0.
        var type: InodeType
        /// mode, offset 2: permission bits (type bits come from inode_type).
        var mode: UInt16
        /// uid / guid, offsets 4 and 6: indexes into the id table.
        var uidIndex: UInt16
        var gidIndex: UInt16
        /// mtime, offset 8: seconds since the epoch, unsigned.
        var mtime: UInt32
        /// inode_number, offset 12.
        var number: UInt32

        init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "squashfs inode header")
            let rawType = try c.u16le(at: 0)
            guard let type = InodeType(rawValue: rawType) else {
                throw FWError.corrupt("squashfs inode has an unknown type \(rawType)")
            }
            self.type = type
            mode = try c.u16le(at: 2)
            uidIndex = try c.u16le(at: 4)
            gidIndex = try c.u16le(at: 6)
            mtime = try c.u32le(at: 8)
            number = try c.u32le(at: 12)
        }
    }

    /// A decoded inode: the header plus the type-specific fields this reader uses.
    struct Inode {
        var header: InodeHeader
        var linkCount: UInt32 = 1
        var size: UInt64 = 0
        var xattrIndex: UInt32 = SquashFS.invalidXattr
        /// Directories: where the listing starts (start_block from the directory table, offset)
        /// and its stored size (file_size, 3 more than the listing's bytes).
        var directoryBlock: UInt32 = 0
        var directoryOffset: UInt16 = 0
        /// Regular files: the first data block's byte address, the fragment index (or none), the
        /// tail's offset in its fragment block, and where the block size list starts.
        var blocksStart: UInt64 = 0
        var fragment: UInt32 = SquashFS.invalidFragment
        var fragmentOffset: UInt32 = 0
        var blockList = MetadataPosition(block: 0, offset: 0)
        var symlinkTarget: [UInt8]?
        /// Devices: the 32-bit Linux `new_encode_dev` value.
        var rdev: UInt32 = 0

        /// Decodes the inode at `position` in the inode table (which ends at `limit`).
        init(store: MetadataStore, at start: MetadataPosition, limit: UInt64) throws {
            var p = start
            func read(_ count: Int, _ what: String) throws -> ByteCursor {
                ByteCursor(try store.read(count, at: &p, limit: limit, what: "squashfs inode table"), context: what)
            }
            header = try InodeHeader(read(InodeHeader.size, "squashfs inode header").bytes)
            switch header.type {
            case .directory:
                // squashfs_dir_inode: start_block u32 @0, nlink u32 @4, file_size u16 @8,
                // offset u16 @10, parent_inode u32 @12.
                let c = try read(16, "squashfs directory inode")
                directoryBlock = try c.u32le(at: 0)
                linkCount = try c.u32le(at: 4)
                size = UInt64(try c.u16le(at: 8))
                directoryOffset = try c.u16le(at: 10)
            case .longDirectory:
                // squashfs_ldir_inode: nlink u32 @0, file_size u32 @4, start_block u32 @8,
                // parent_inode u32 @12, i_count u16 @16, offset u16 @18, xattr u32 @20, then
                // i_count index entries (a lookup accelerator this reader does not need).
                let c = try read(24, "squashfs extended directory inode")
                linkCount = try c.u32le(at: 0)
                size = UInt64(try c.u32le(at: 4))
                directoryBlock = try c.u32le(at: 8)
                directoryOffset = try c.u16le(at: 18)
                xattrIndex = try c.u32le(at: 20)
            case .regular:
                // squashfs_reg_inode: start_block u32 @0, fragment u32 @4, offset u32 @8,
                // file_size u32 @12, then the block size list.
                let c = try read(16, "squashfs file inode")
                blocksStart = UInt64(try c.u32le(at: 0))
                fragment = try c.u32le(at: 4)
                fragmentOffset = try c.u32le(at: 8)
                size = UInt64(try c.u32le(at: 12))
                blockList = p
            case .longRegular:
                // squashfs_lreg_inode: start_block u64 @0, file_size u64 @8, sparse u64 @16,
                // nlink u32 @24, fragment u32 @28, offset u32 @32, xattr u32 @36, block list.
                let c = try read(40, "squashfs extended file inode")
                blocksStart = try c.u64le(at: 0)
                size = try c.u64le(at: 8)
                linkCount = try c.u32le(at: 24)
                fragment = try c.u32le(at: 28)
                fragmentOffset = try c.u32le(at: 32)
                xattrIndex = try c.u32le(at: 36)
                blockList = p
            case .symlink, .longSymlink:
                // squashfs_symlink_inode: nlink u32 @0, symlink_size u32 @4, the target, then
                // (extended only) xattr u32.
                let c = try read(8, "squashfs symlink inode")
                linkCount = try c.u32le(at: 0)
                let length = try c.u32le(at: 4)
                guard length <= PathComponents.maximumSymlinkLength else {
                    throw FWError.corrupt("squashfs symlink target of \(length) bytes is over the \(PathComponents.maximumSymlinkLength)-byte limit")
                }
                size = UInt64(length)
                symlinkTarget = try read(Int(length), "squashfs symlink target").bytes
                if header.type == .longSymlink {
                    xattrIndex = try read(4, "squashfs symlink xattr index").u32le(at: 0)
                }
            case .blockDevice, .characterDevice, .longBlockDevice, .longCharacterDevice:
                // squashfs_dev_inode: nlink u32 @0, rdev u32 @4; extended adds xattr u32 @8.
                let long = header.type == .longBlockDevice || header.type == .longCharacterDevice
                let c = try read(long ? 12 : 8, "squashfs device inode")
                linkCount = try c.u32le(at: 0)
                rdev = try c.u32le(at: 4)
                if long { xattrIndex = try c.u32le(at: 8) }
            case .fifo, .socket, .longFifo, .longSocket:
                // squashfs_ipc_inode: nlink u32 @0; extended adds xattr u32 @4.
                let long = header.type == .longFifo || header.type == .longSocket
                let c = try read(long ? 8 : 4, "squashfs fifo/socket inode")
                linkCount = try c.u32le(at: 0)
                if long { xattrIndex = try c.u32le(at: 4) }
            }
        }

        var hasFragment: Bool { fragment != SquashFS.invalidFragment }

        /// Entries in the block size list: whole blocks only when the tail is in a fragment.
        func blockCount(blockSize: UInt32) -> UInt64 {
            let bs = UInt64(blockSize)
            return hasFragment ? size / bs : size / bs + (size % bs == 0 ? 0 : 1)
        }
    }

    /// `struct squashfs_dir_header`, 12 bytes before a run of entries sharing one inode block.
    struct DirectoryHeader {
        static let size = 12
        /// count, offset 0: entries that follow, minus one.
        var count: UInt32
        /// start_block, offset 4: the entries' inode metadata block (from the inode table start).
        var startBlock: UInt32
        /// inode_number, offset 8: base for the entries' inode number deltas.
        var inodeNumber: UInt32

        init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "squashfs directory header")
            count = try c.u32le(at: 0)
            startBlock = try c.u32le(at: 4)
            inodeNumber = try c.u32le(at: 8)
        }
    }

    /// `struct squashfs_dir_entry`, 8 bytes then the name.
    struct DirectoryEntryRecord {
        static let size = 8
        /// offset, offset 0: the inode's offset in its metadata block.
        var offset: UInt16
        /// inode_number, offset 2: signed delta from the header's inode number.
        var inodeDelta: Int16
        /// type, offset 4: the inode's basic type.
        var type: UInt16
        /// size, offset 6: name length minus one.
        var nameSize: UInt16

        init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "squashfs directory entry")
            offset = try c.u16le(at: 0)
            inodeDelta = Int16(bitPattern: try c.u16le(at: 2))
            type = try c.u16le(at: 4)
            nameSize = try c.u16le(at: 6)
        }
    }

    /// `struct squashfs_fragment_entry`, 16 bytes: start_block u64 @0, size u32 @8 (bit 24:
    /// uncompressed), unused u32 @12.
    struct FragmentEntry {
        static let size = 16
        var start: UInt64
        var size: UInt32

        init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "squashfs fragment entry")
            start = try c.u64le(at: 0)
            size = try c.u32le(at: 8)
        }
    }

    /// `struct squashfs_xattr_id`, 16 bytes: xattr u64 @0 (reference into the xattr table),
    /// count u32 @8, size u32 @12 (total bytes of names and values).
    struct XattrID {
        static let size = 16
        var reference: UInt64
        var count: UInt32
        var size: UInt32

        init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "squashfs xattr id")
            reference = try c.u64le(at: 0)
            count = try c.u32le(at: 8)
            size = try c.u32le(at: 12)
        }
    }

    /// `struct squashfs_xattr_id_table`, 16 bytes at xattr_id_table_start, followed by the
    /// u64 addresses of the metadata blocks holding the xattr ids.
    struct XattrIDTableHeader {
        static let size = 16
        /// xattr_table_start, offset 0: where the name/value metadata blocks begin.
        var tableStart: UInt64
        /// xattr_ids, offset 8.
        var count: UInt32

        init(_ bytes: [UInt8]) throws {
            let c = ByteCursor(bytes, context: "squashfs xattr id table header")
            tableStart = try c.u64le(at: 0)
            count = try c.u32le(at: 8)
        }
    }
}
