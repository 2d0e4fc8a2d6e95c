internal import CExt2fs
import DiskImage
import FileSystems
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The geometry and identity of an ext4 image (docs/rehosting.md, "Sizing").
public struct Ext4ImageGeometry: Sendable, Equatable {
    public static let blockSize: UInt64 = 4096
    /// Blocks of 4 KiB and inodes.
    public var blocks: UInt64
    public var inodes: UInt32
    /// The filesystem UUID and the directory hash seed.
    public var uuid: [UInt8]
    public var hashSeed: [UInt8]
    /// The time written into the superblock (mkfs, last write, last check).
    public var timestamp: UInt32

    /// The most blocks an ext4 without the 64bit feature holds (32-bit block numbers): 16 TiB.
    public static let maximumBlocks: UInt64 = (1 << 32) - 1

    /// penguin's `gen_image.make_image` formula over the size its tar would have: blocks =
    /// ceil((tar + padding) / 4096) + 4096; inodes = blocks * 4096 / 8192 + 1000 (never fewer than
    /// the entries + 1000). Nil when the blocks would be more than `maximumBlocks` (checked
    /// arithmetic throughout: the sizes come from the disk).
    public static func penguin(tarBytes: UInt64, padding: UInt64, entries: Int) -> (blocks: UInt64, inodes: UInt32)? {
        let (unpacked, o1) = tarBytes.addingReportingOverflow(padding)
        let (rounded, o2) = unpacked.addingReportingOverflow(blockSize - 1)
        let blocks = rounded / blockSize + 4096
        guard !o1, !o2, blocks <= maximumBlocks else { return nil }
        let inodes = max(blocks * blockSize / 8192 + 1000, UInt64(max(entries, 0)) + 1000)
        return (blocks, UInt32(min(inodes, UInt64(UInt32.max - 1))))
    }

    public init(blocks: UInt64, inodes: UInt32, uuid: [UInt8], hashSeed: [UInt8], timestamp: UInt32) {
        self.blocks = blocks
        self.inodes = inodes
        self.uuid = uuid
        self.hashSeed = hashSeed
        self.timestamp = timestamp
    }
}

/// Writes a filesystem tree as a new ext4 filesystem through libext2fs: the superblock and
/// tables as mke2fs lays them out (extents, flex_bg, 256-byte inodes, a journal), then every
/// entry added in walk order with `add`: directories, files streamed block by block (blocks of
/// zeros left as holes), symlinks, devices, FIFOs, sockets, all xattrs, hardlinks as shared
/// inodes, nanosecond times. Not thread-safe; one writer per image.
public final class Ext4ImageWriter {
    private(set) var fs: ext2_filsys?
    private let name: String
    private let geometry: Ext4ImageGeometry
    /// Inode numbers of directories (the parents of entries to come) and of files with more than
    /// one link or that may appear again (a later path may link to them): no other entry.
    private var inodes: [[UInt8]: UInt32] = [:]
    /// Directories this writer made while appending (`replace`): no earlier entry can be in them,
    /// so their names need no lookup.
    var madeWhileAppending: Set<UInt32> = []
    /// For each directory this writer made: the most room any of its blocks but the last has for
    /// a new record (Ext4ImageWriter+Directory.swift). Absent: use ext2fs_link.
    var directorySlack: [UInt32: Int] = [:]
    /// ext4's largest link count (EXT4_LINK_MAX); a further link is written as a copy.
    public let maximumLinks: UInt16
    private var buffer: UnsafeMutableRawBufferPointer
    /// Problems that did not stop the image (unsettable xattrs, unreadable files).
    public private(set) var problems: [(path: String, message: String)] = []
    public private(set) var files = 0
    public private(set) var hardlinks = 0
    /// Paths written as a copy (a new inode with the same content and metadata) because their
    /// file had `maximumLinks` links already, as the kernel refuses a further link (EMLINK);
    /// the first few of them.
    public private(set) var linkLimited = PathSample()
    public var linkLimitCopies: Int { linkLimited.count }
    public var linkLimitPaths: [String] { linkLimited.first }
    /// Inodes in use when the image was finished (the reserved ones, lost+found and the journal
    /// included), as `df -i` counts them.
    public private(set) var inodesUsed: UInt32 = 0
    /// The image's inode capacity (the geometry's count rounded up to whole block groups).
    public private(set) var inodesTotal: UInt32 = 0
    public private(set) var contentBytes: UInt64 = 0

    private static let errorTable: Void = { initialize_ext2_error_table() }()

    /// Creates the filesystem in the file at `path` (which must exist; it is written in place).
    public init(path: String, geometry: Ext4ImageGeometry, maximumLinks: UInt16 = 65_000) throws {
        _ = Self.errorTable
        name = path
        self.geometry = geometry
        self.maximumLinks = max(maximumLinks, 2)
        buffer = .allocate(byteCount: 1 << 20, alignment: 4096)
        var param = ext2_super_block()
        ext2fs_blocks_count_set(&param, blk64_t(geometry.blocks))
        param.s_log_block_size = 2
        param.s_inodes_count = geometry.inodes
        param.s_rev_level = 1
        param.s_inode_size = 256
        param.s_log_groups_per_flex = 4
        param.s_feature_compat = UInt32(EXT2_FEATURE_COMPAT_EXT_ATTR | EXT2_FEATURE_COMPAT_RESIZE_INODE)
        param.s_feature_incompat = UInt32(EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS | EXT4_FEATURE_INCOMPAT_FLEX_BG)
        param.s_feature_ro_compat = UInt32(EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE
            | EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_DIR_NLINK | EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE)
        param.s_min_extra_isize = 32
        param.s_want_extra_isize = 32
        var created: ext2_filsys?
        try check(ext2fs_initialize(path, EXT2_FLAG_RW | EXT2_FLAG_64BITS, &param, fwa_unix_io_manager(), &created), "create the filesystem")
        fs = created
        guard let fs = created else { throw FWError(.io, "libext2fs returned no filesystem", path: path) }
        fs.pointee.now = time_t(geometry.timestamp)
        let sb = fs.pointee.super!
        withUnsafeMutableBytes(of: &sb.pointee.s_uuid) { dst in for i in 0..<min(16, geometry.uuid.count) { dst[i] = geometry.uuid[i] } }
        withUnsafeMutableBytes(of: &sb.pointee.s_hash_seed) { dst in for i in 0..<min(16, geometry.hashSeed.count) { dst[i] = geometry.hashSeed[i] } }
        sb.pointee.s_def_hash_version = UInt8(EXT2_HASH_HALF_MD4)
        sb.pointee.s_mkfs_time = geometry.timestamp
        sb.pointee.s_lastcheck = geometry.timestamp
        sb.pointee.s_wtime = geometry.timestamp
        sb.pointee.s_max_mnt_count = -1
        sb.pointee.s_checkinterval = 0
        try check(ext2fs_allocate_tables(fs), "allocate the group tables")
        try check(ext2fs_convert_subcluster_bitmap(fs, &fs.pointee.block_map), "convert the block bitmap")
        // The root, the reserved inodes and the bad-block inode, as mke2fs makes them.
        try check(ext2fs_mkdir(fs, ext2_ino_t(EXT2_ROOT_INO), ext2_ino_t(EXT2_ROOT_INO), nil), "create the root directory")
        let firstInode = ext2_ino_t(sb.pointee.s_first_ino)
        for ino in ext2_ino_t(EXT2_ROOT_INO + 1)..<firstInode { ext2fs_inode_alloc_stats2(fs, ino, 1, 0) }
        ext2fs_mark_inode_bitmap2(fs.pointee.inode_map, ext2_ino_t(EXT2_BAD_INO))
        ext2fs_inode_alloc_stats2(fs, ext2_ino_t(EXT2_BAD_INO), 1, 0)
        try check(ext2fs_update_bb_inode(fs, nil), "write the bad-block inode")
        try check(ext2fs_create_resize_inode(fs), "create the resize inode")
        inodes[[]] = UInt32(EXT2_ROOT_INO)
        directorySlack[UInt32(EXT2_ROOT_INO)] = 0
    }

    deinit {
        buffer.deallocate()
        if fs != nil { ext2fs_free(fs) }
    }

    /// Adds lost+found (if the tree has none) and the journal, and writes everything out.
    public func finish() throws {
        guard let fs else { return }
        var ino: ext2_ino_t = 0
        if ext2fs_lookup(fs, ext2_ino_t(EXT2_ROOT_INO), "lost+found", 10, nil, &ino) != 0 {
            do {
                try check(ext2fs_mkdir(fs, ext2_ino_t(EXT2_ROOT_INO), 0, "lost+found"), "create lost+found")
            } catch let e as FWError where e.cause is ImageFull {
                throw e.within(path: "/lost+found")
            }
            try check(ext2fs_lookup(fs, ext2_ino_t(EXT2_ROOT_INO), "lost+found", 10, nil, &ino), "find lost+found")
            // 16 KiB, as mke2fs makes it, so e2fsck can reconnect files without allocating.
            var inode = ext2_inode()
            for _ in 0..<3 {
                try check(ext2fs_read_inode(fs, ino, &inode), "read lost+found")
                if inode.i_size >= 16384 { break }
                try check(ext2fs_expand_dir(fs, ino), "expand lost+found")
            }
            try setTimes(ino, Timestamp(seconds: Int64(fs.pointee.now)))
        }
        var params = ext2fs_journal_params()
        try check(ext2fs_get_journal_params(&params, fs), "size the journal")
        try check(ext2fs_add_journal_inode3(fs, &params, ~blk64_t(0), EXT2_MKJOURNAL_LAZYINIT), "create the journal",
                  tooSmallFor: "the content and its \(params.num_journal_blocks)-block journal")
        let sb = fs.pointee.super!
        inodesTotal = sb.pointee.s_inodes_count
        inodesUsed = sb.pointee.s_inodes_count - min(sb.pointee.s_free_inodes_count, sb.pointee.s_inodes_count)
        try check(ext2fs_close_free(&self.fs), "write the filesystem")
    }

    /// Adds one entry of a walk below the entries already added (parents come first). With
    /// `replace`, an existing non-directory at the path is unlinked first, and an existing
    /// directory only gets the entry's metadata (a tar appended on top). When the image has no
    /// block or inode left for the entry, the error (`.limitExceeded`) names the entry's path and
    /// says which option makes the image larger.
    /// With `keepDirectory` (a directory the tar implies, docs/limits.md), a directory already
    /// at the path keeps its own metadata.
    public func add(path: [UInt8], metadata m: Metadata, hardlinkTarget: [UInt8]?,
                    contents: () throws -> any FileContents, replace: Bool = false, mayLinkAgain: Bool = false,
                    keepDirectory: Bool = false) throws {
        let display = "/" + String(decoding: path, as: UTF8.self)
        do {
            try addEntry(path: path, display: display, metadata: m, hardlinkTarget: hardlinkTarget, contents: contents,
                         replace: replace, mayLinkAgain: mayLinkAgain, keepDirectory: keepDirectory)
        } catch let e as FWError where e.cause is ImageFull {
            throw e.within(path: display)
        }
    }

    private func addEntry(path: [UInt8], display: String, metadata m: Metadata, hardlinkTarget: [UInt8]?,
                          contents: () throws -> any FileContents, replace: Bool, mayLinkAgain: Bool, keepDirectory: Bool) throws {
        guard let fs else { throw FWError(.invalidArgument, "the image is already finished", path: name) }
        if path.isEmpty {
            try setMetadata(ext2_ino_t(EXT2_ROOT_INO), m, path: display)
            return
        }
        let slash = path.lastIndex(of: 0x2F)
        let parentPath = slash.map { Array(path[..<$0]) } ?? []
        let leaf = slash.map { Array(path[($0 + 1)...]) } ?? path
        let parent = try parentInode(parentPath, replace: replace)
        var cname = leaf.map { CChar(bitPattern: $0) } + [0]
        if replace, !madeWhileAppending.contains(parent),
           try replaceExisting(path: path, display: display, metadata: m, parent: parent, name: &cname, keepDirectory: keepDirectory) {
            return
        }
        if let target = hardlinkTarget, try addLink(path: path, to: target, parent: parent, name: &cname, display: display) {
            return
        }
        var ino: ext2_ino_t = 0
        switch m.type {
        case .directory:
            var code = ext2fs_mkdir(fs, parent, 0, &cname)
            if code == errcode_t(EXT2_ET_DIR_NO_SPACE) {
                // No block had room for the name: none has more than 4 bytes less.
                directorySlack[parent] = Self.recordLength(leaf.count) - 4
                try check(ext2fs_expand_dir(fs, parent), "expand the directory of \(display)")
                code = ext2fs_mkdir(fs, parent, 0, &cname)
            }
            try check(code, "create \(display)")
            try check(ext2fs_lookup(fs, parent, &cname, Int32(leaf.count), nil, &ino), "find \(display)")
            directorySlack[ino] = 0
            try setMetadata(ino, m, path: display)
            inodes[path] = ino
            if replace { madeWhileAppending.insert(ino) }
            return
        case .symlink:
            try check(ext2fs_new_inode(fs, parent, Int32(m.mode), nil, &ino), "allocate an inode for \(display)")
            var target = (m.symlinkTarget ?? []).map { CChar(bitPattern: $0) } + [0]
            try check(ext2fs_symlink(fs, parent, ino, nil, &target), "create the symlink \(display)")
        default:
            try check(ext2fs_new_inode(fs, parent, Int32(m.mode), nil, &ino), "allocate an inode for \(display)")
            ext2fs_inode_alloc_stats2(fs, ino, 1, 0)
            var inode = ext2_inode_large()
            inode.i_mode = UInt16(truncatingIfNeeded: m.mode)
            inode.i_links_count = 1
            inode.i_extra_isize = 32
            if m.type == .regular, ext2fs_has_feature_extents(fs.pointee.super) != 0 {
                var handle: ext2_extent_handle_t?
                try withUnsafeMutablePointer(to: &inode) { p in
                    try p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { small in
                        try check(ext2fs_extent_open2(fs, ino, small, &handle), "start the extent tree of \(display)")
                    }
                }
                ext2fs_extent_free(handle)
            }
            if let dev = m.device, m.type == .characterDevice || m.type == .blockDevice {
                withUnsafeMutableBytes(of: &inode.i_block) { raw in
                    let blocks = raw.bindMemory(to: UInt32.self)
                    if dev.major < 256, dev.minor < 256 {
                        blocks[0] = dev.major * 256 + dev.minor
                    } else {
                        blocks[1] = (dev.minor & 0xFF) | (dev.major << 8) | ((dev.minor & ~0xFF) << 12)
                    }
                }
            }
            try writeInode(ino, &inode, display)
        }
        try link(parent, &cname, ino, fileType(of: UInt16(truncatingIfNeeded: m.mode)), display)
        if m.type == .regular {
            try writeContents(ino, size: m.size, contents: contents, path: display)
            files += 1
            contentBytes += m.size
        }
        try setMetadata(ino, m, path: display)
        if let target = hardlinkTarget {
            // A copy past the link limit: the target's further links go to it.
            inodes[target] = ino
        } else if m.linkCount > 1 || mayLinkAgain {
            inodes[path] = ino
        }
    }

    /// Links `path` to the inode written for `target`; false when that inode has `maximumLinks`
    /// links already (the caller writes the path as a copy, counted in `linkLimitCopies`).
    private func addLink(path: [UInt8], to target: [UInt8], parent: ext2_ino_t, name cname: inout [CChar], display: String) throws -> Bool {
        guard let ino = inodes[target] else {
            throw FWError(.corrupt, "hardlink target /\(String(decoding: target, as: UTF8.self)) was not written", path: display)
        }
        var inode = ext2_inode()
        try check(ext2fs_read_inode(fs, ino, &inode), "read \(display)")
        guard inode.i_links_count < maximumLinks else {
            linkLimited.add(display)
            return false
        }
        try link(parent, &cname, ino, fileType(of: inode.i_mode), display)
        try check(ext2fs_read_inode(fs, ino, &inode), "read \(display)")
        inode.i_links_count += 1
        try check(ext2fs_write_inode(fs, ino, &inode), "write \(display)")
        hardlinks += 1
        return true
    }

    // MARK: Helpers

    /// With `replace`: an existing non-directory at the path is unlinked (its inode freed when
    /// that was its last link); an existing directory gets the entry's metadata when the entry is
    /// a directory, or stays when it is not (a problem noted). True when the entry is done.
    private func replaceExisting(path: [UInt8], display: String, metadata m: Metadata, parent: ext2_ino_t,
                                 name cname: inout [CChar], keepDirectory: Bool) throws -> Bool {
        guard let fs else { return false }
        var existing: ext2_ino_t = 0
        guard ext2fs_lookup(fs, parent, &cname, Int32(cname.count - 1), nil, &existing) == 0 else { return false }
        var old = ext2_inode()
        try check(ext2fs_read_inode(fs, existing, &old), "read \(display)")
        let oldIsDirectory = old.i_mode & 0o170000 == 0o040000
        if oldIsDirectory, m.type == .directory {
            if !keepDirectory { try setMetadata(existing, m, path: display) }
            inodes[path] = existing
            return true
        }
        if oldIsDirectory {
            problems.append((display, "a directory in the image; the appended entry is not written"))
            return true
        }
        try check(ext2fs_unlink(fs, parent, &cname, existing, 0), "unlink \(display)")
        directorySlack[parent] = nil
        old.i_links_count -= 1
        if old.i_links_count == 0 {
            if ext2fs_inode_has_valid_blocks2(fs, &old) != 0 {
                try check(ext2fs_punch(fs, existing, &old, nil, 0, ~blk64_t(0)), "free \(display)")
            }
            old.i_dtime = UInt32(truncatingIfNeeded: fs.pointee.now)
            ext2fs_inode_alloc_stats2(fs, existing, -1, 0)
        }
        try check(ext2fs_write_inode(fs, existing, &old), "write \(display)")
        return false
    }

    private func parentInode(_ path: [UInt8], replace: Bool) throws -> ext2_ino_t {
        if let ino = inodes[path] { return ino }
        guard replace else {
            throw FWError(.corrupt, "parent directory was not written", path: "/" + String(decoding: path, as: UTF8.self))
        }
        // A tar member whose parent the tar does not list: made as root's 0755 directory.
        let meta = Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0,
                            mtime: Timestamp(seconds: Int64(fs?.pointee.now ?? 0)), inode: 0)
        try add(path: path, metadata: meta, hardlinkTarget: nil, contents: { throw FWError(.invalidArgument, "directory") }, replace: true)
        guard let ino = inodes[path] else { throw FWError(.corrupt, "cannot create the parent directory", path: "/" + String(decoding: path, as: UTF8.self)) }
        return ino
    }

    private func link(_ parent: ext2_ino_t, _ name: inout [CChar], _ ino: ext2_ino_t, _ type: Int32, _ display: String) throws {
        if try appendLink(parent, name, ino, type, display) { return }
        var code = ext2fs_link(fs, parent, &name, ino, type)
        if code == errcode_t(EXT2_ET_DIR_NO_SPACE) {
            // No block had room for the name: none has more than 4 bytes less.
            directorySlack[parent] = Self.recordLength(name.count - 1) - 4
            try check(ext2fs_expand_dir(fs, parent), "expand the directory of \(display)")
            code = ext2fs_link(fs, parent, &name, ino, type)
        }
        try check(code, "link \(display)")
    }

    private func fileType(of mode: UInt16) -> Int32 {
        switch UInt32(mode) & 0o170000 {
        case 0o100000: return Int32(EXT2_FT_REG_FILE)
        case 0o040000: return Int32(EXT2_FT_DIR)
        case 0o120000: return Int32(EXT2_FT_SYMLINK)
        case 0o020000: return Int32(EXT2_FT_CHRDEV)
        case 0o060000: return Int32(EXT2_FT_BLKDEV)
        case 0o010000: return Int32(EXT2_FT_FIFO)
        case 0o140000: return Int32(EXT2_FT_SOCK)
        default: return Int32(EXT2_FT_UNKNOWN)
        }
    }

    private func readInode(_ ino: ext2_ino_t, _ display: String) throws -> ext2_inode_large {
        var inode = ext2_inode_large()
        try withUnsafeMutablePointer(to: &inode) { p in
            try p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { small in
                try check(ext2fs_read_inode_full(fs, ino, small, Int32(MemoryLayout<ext2_inode_large>.size)), "read \(display)")
            }
        }
        return inode
    }

    private func writeInode(_ ino: ext2_ino_t, _ inode: inout ext2_inode_large, _ display: String) throws {
        try withUnsafeMutablePointer(to: &inode) { p in
            try p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { small in
                try check(ext2fs_write_inode_full(fs, ino, small, Int32(MemoryLayout<ext2_inode_large>.size)), "write \(display)")
            }
        }
    }

    /// ext4's split time: 32 low bits of seconds, and in the extra field the nanoseconds and two
    /// epoch bits; a time outside what they hold (1901-12-13..2446-05-10) is clamped to the
    /// nearest end (a tar's members are clamped, and counted, when read: docs/limits.md).
    private static func encode(_ t: Timestamp) -> (UInt32, UInt32) {
        let earliest = -(Int64(1) << 31), latest = (Int64(1) << 34) - (Int64(1) << 31) - 1
        guard t.seconds >= earliest, t.seconds <= latest else {
            return encode(Timestamp(seconds: min(max(t.seconds, earliest), latest)))
        }
        let low = UInt32(truncatingIfNeeded: t.seconds)
        let epoch = UInt32(truncatingIfNeeded: (t.seconds - Int64(Int32(truncatingIfNeeded: t.seconds))) >> 32) & 3
        return (low, (t.nanoseconds << 2) | epoch)
    }

    private func setTimes(_ ino: ext2_ino_t, _ t: Timestamp) throws {
        var inode = try readInode(ino, "inode \(ino)")
        let (s, x) = Self.encode(t)
        (inode.i_mtime, inode.i_mtime_extra, inode.i_atime, inode.i_atime_extra) = (s, x, s, x)
        (inode.i_ctime, inode.i_ctime_extra, inode.i_crtime, inode.i_crtime_extra) = (s, x, s, x)
        try writeInode(ino, &inode, "inode \(ino)")
    }

    /// Mode, owners, times and xattrs of an inode already created.
    private func setMetadata(_ ino: ext2_ino_t, _ m: Metadata, path: String) throws {
        guard let fs else { return }
        var inode = try readInode(ino, path)
        inode.i_mode = UInt16(truncatingIfNeeded: m.mode)
        inode.i_uid = UInt16(truncatingIfNeeded: m.uid)
        inode.osd2.linux2.l_i_uid_high = UInt16(truncatingIfNeeded: m.uid >> 16)
        inode.i_gid = UInt16(truncatingIfNeeded: m.gid)
        inode.osd2.linux2.l_i_gid_high = UInt16(truncatingIfNeeded: m.gid >> 16)
        if inode.i_extra_isize < 32 { inode.i_extra_isize = 32 }
        let (ms, mx) = Self.encode(m.mtime)
        let (as_, ax) = Self.encode(m.atime ?? m.mtime)
        let (cs, cx) = Self.encode(m.ctime ?? m.mtime)
        (inode.i_mtime, inode.i_mtime_extra, inode.i_atime, inode.i_atime_extra) = (ms, mx, as_, ax)
        (inode.i_ctime, inode.i_ctime_extra, inode.i_crtime, inode.i_crtime_extra) = (cs, cx, ms, mx)
        try writeInode(ino, &inode, path)
        guard !m.xattrs.isEmpty else { return }
        var handle: OpaquePointer?
        try check(ext2fs_xattrs_open(fs, ino, &handle), "open the xattrs of \(path)")
        defer { _ = ext2fs_xattrs_close(&handle) }
        try check(ext2fs_xattrs_read(handle), "read the xattrs of \(path)")
        for x in m.xattrs {
            let code = x.value.withUnsafeBytes { v in ext2fs_xattr_set(handle, x.name, v.baseAddress, v.count) }
            if code != 0 { problems.append((path, "xattr \(x.name) not written: \(Self.message(code))")) }
        }
    }

    /// Streams a regular file's bytes; whole blocks of zeros are skipped, left as holes.
    private func writeContents(_ ino: ext2_ino_t, size: UInt64, contents: () throws -> any FileContents, path: String) throws {
        guard size > 0 else { return }
        var file: ext2_file_t?
        try check(ext2fs_file_open(fs, ino, Int32(EXT2_FILE_WRITE), &file), "open \(path) for writing")
        defer { ext2fs_file_close(file) }
        var offset: UInt64 = 0
        var source: (any FileContents)?
        do {
            source = try contents()
        } catch {
            problems.append((path, "cannot open (\(FWError(error).message)); written as \(size) zero bytes"))
        }
        while let source, offset < size {
            let n: Int
            do {
                n = try source.read(into: buffer)
            } catch {
                problems.append((path, "cannot read (\(FWError(error).message)); the rest reads as zeros"))
                break
            }
            if n == 0 {
                problems.append((path, "file is shorter than its size (\(offset) of \(size) bytes); the rest reads as zeros"))
                break
            }
            let count = Int(min(UInt64(n), size - offset))
            var chunk = 0
            while chunk < count {
                let length = min(Int(Ext4ImageGeometry.blockSize), count - chunk)
                let piece = UnsafeRawBufferPointer(rebasing: buffer[chunk..<(chunk + length)])
                if !piece.allSatisfy({ $0 == 0 }) {
                    try check(ext2fs_file_llseek(file, offset + UInt64(chunk), Int32(EXT2_SEEK_SET), nil), "seek in \(path)")
                    var written: UInt32 = 0
                    try check(ext2fs_file_write(file, piece.baseAddress, UInt32(length), &written), "write \(path)")
                }
                chunk += length
            }
            offset += UInt64(count)
        }
        try check(ext2fs_file_set_size2(file, ext2_off64_t(size)), "set the size of \(path)")
    }

    private static func message(_ code: errcode_t) -> String {
        error_message(code).map { String(cString: $0) } ?? "error \(code)"
    }

    /// Throws libext2fs's message for a failed call (`what`: "write /etc/passwd"), or, when the
    /// image is full, a `.limitExceeded` error saying it is too small for `content`.
    func check(_ code: errcode_t, _ what: @autoclosure () -> String, tooSmallFor content: String = "the content") throws {
        guard code != 0 else { return }
        if let tooSmall = tooSmall(code, for: content) {
            // The image's own name is a temporary file the user never sees; `add` names the entry.
            throw FWError(.limitExceeded, tooSmall, cause: ImageFull(code: code, message: Self.message(code)))
        }
        throw FWError(.io, "cannot \(what()): \(Self.message(code))", disk: name)
    }

    /// libext2fs ran out of blocks or inodes (`EXT2_ET_BLOCK_ALLOC_FAIL`, `EXT2_ET_DIR_NO_SPACE`
    /// after the directory could not grow, `EXT2_ET_INODE_ALLOC_FAIL`, ...): the cause of the
    /// `.limitExceeded` error `check` throws.
    struct ImageFull: Error, Sendable {
        let code: Int
        /// libext2fs's own message ("Could not allocate block in ext2 filesystem").
        let message: String

        init(code: errcode_t, message: String) {
            self.code = Int(code)
            self.message = message
        }
    }

    /// What to tell the user when `code` says the image is full, nil for any other code.
    private func tooSmall(_ code: errcode_t, for content: String) -> String? {
        let blocks = fs.map { UInt64(ext2fs_blocks_count($0.pointee.super)) } ?? geometry.blocks
        let inodes = fs.map { $0.pointee.super.pointee.s_inodes_count } ?? geometry.inodes
        switch code {
        case errcode_t(EXT2_ET_BLOCK_ALLOC_FAIL), errcode_t(EXT2_ET_DIR_NO_SPACE), errcode_t(EXT2_ET_TOOSMALL),
             errcode_t(EXT2_ET_JOURNAL_TOO_SMALL):
            return "the ext4 image is too small: \(blocks) blocks of 4 KiB for \(content); give --padding (MiB) larger"
        case errcode_t(EXT2_ET_INODE_ALLOC_FAIL):
            return "the ext4 image is too small: \(inodes) inodes for \(content); give --inodes larger"
        case errcode_t(EXT2_ET_TOO_MANY_INODES):
            return "the ext4 image is too small for \(inodes) inodes (\(blocks) blocks of 4 KiB); give --inodes smaller or --padding (MiB) larger"
        default:
            return nil
        }
    }
}
