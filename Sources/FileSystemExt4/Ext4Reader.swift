internal import CExt2fs
import DiskImage
import FileSystems

/// A read-only ext2/ext3/ext4 filesystem, read through libext2fs from any `ByteSource` (a
/// partition slice of a disk image, bytes in memory) by way of `SourceIOManager`.
///
/// Opening reads the superblock and group descriptors only; inodes, directories and file
/// contents are read on demand. Used from one thread at a time (libext2fs handles are not
/// thread-safe). A filesystem marked "needs recovery" (a snapshot of a mounted one) has its
/// journal replayed, as the kernel does when it mounts it, into a copy-on-write overlay: the
/// source is never written (see `JBD2` and `journal`); `replayJournal: false` reads the blocks
/// as they are.
public final class Ext4Reader: FileSystemReader {
    public var formatName: String { "ext4" }
    /// "ext2", "ext3" or "ext4", from the feature flags (as blkid names them).
    public let variant: String
    public let sourceName: String
    /// The image and partition its errors name.
    public let place: FWError.Place
    public var rootInode: UInt64 { 2 }   // EXT2_ROOT_INO
    /// The filesystem label (s_volume_name), empty when none.
    public let label: String
    /// Block size in bytes.
    public let blockSize: Int
    /// The journal holds transactions that were never written back (a snapshot of a mounted
    /// filesystem, an unclean shutdown): s_feature_incompat has RECOVER on disk.
    public let needsRecovery: Bool
    /// What replaying the journal did, nil when the filesystem does not need recovery.
    public private(set) var journal: JournalReplay?

    private let fs: FileSystemHandle
    private var channel: ChannelState
    /// Blocks in the filesystem (ext2fs_blocks_count): no extent may point past them.
    let blocksCount: UInt64
    /// Where the filesystem's blocks are read from.
    var source: any ByteSource { channel.source }
    private let inodeSize: Int
    private let inodeCount: UInt32
    private let highIDs: Bool
    private let largeDirectories: Bool
    /// The ea_inode feature: xattr values may live in inodes of their own, and the kernel tells a
    /// fast symlink by its size alone (`Ext4Inode.isFastSymlink`).
    private let eaInodeFeature: Bool
    private let clusterRatioBits: Int

    /// Largest inline-data symlink read (the kernel reads at most a block of any symlink).
    static let maximumSymlinkLength = 65536
    /// Bytes libext2fs is asked for per `ext2fs_file_read` call.
    static let readChunk = 1 << 20

    /// Registers libext2fs's error table with com_err exactly once per process, so that
    /// `error_message()` returns libext2fs's own texts.
    private static let errorTable: Void = { initialize_ext2_error_table() }()

    /// s_blocks_count blocks of the block size (saturating: a damaged count is then simply large).
    public var declaredSize: UInt64? {
        let (bytes, overflow) = blocksCount.multipliedReportingOverflow(by: UInt64(blockSize))
        return overflow ? .max : bytes
    }

    /// Opens the filesystem in `source`. `name` is used in messages ("disk.img partition 7
    /// (hassos-overlay)"); it defaults to the source's name. With `replayJournal` (the default) a
    /// filesystem that needs recovery is read as the kernel would mount it: journal replayed and
    /// orphan list processed, in memory only.
    /// `journalProgress` is called now and then while the journal is replayed, with the journal
    /// blocks replayed so far and in all.
    public init(source: any ByteSource, name: String? = nil, replayJournal: Bool = true,
                journalProgress: JournalProgress? = nil) throws {
        _ = Self.errorTable
        let sourceName = name ?? source.name
        self.sourceName = sourceName
        let place = FWError.Place(source: source, name: name)
        self.place = place
        var (state, owner) = try Self.open(source, place: place)
        var handle = owner.pointer
        needsRecovery = handle.pointee.super.map { $0.pointee.s_feature_incompat & UInt32(EXT3_FEATURE_INCOMPAT_RECOVER) != 0 } ?? false
        var journal: JournalReplay? = nil
        if needsRecovery {
            if replayJournal {
                var replay: JournalReplay
                let overlay: BlockOverlay?
                do {
                    (overlay, replay) = try Self.replayJournal(handle, source: source, blockSize: Int(handle.pointee.blocksize),
                                                               blocksCount: handle.pointee.super.map { ext2fs_blocks_count($0) } ?? 0,
                                                               progress: journalProgress)
                } catch {
                    throw FWError(error).within(place)
                }
                if let overlay {
                    // Reopen over the replayed blocks: superblock, group descriptors and all (the
                    // first handle is closed by its owner).
                    (state, owner) = try Self.open(OverlaySource(base: source, overlay: overlay), place: place)
                    handle = owner.pointer
                }
                replay.orphans = Self.orphanCount(handle, warnings: &replay.warnings)
                journal = replay
            } else {
                var skipped = JournalReplay()
                skipped.warnings.append("journal replay turned off (--no-replay): the on-disk state is read, recent changes may be missing")
                journal = skipped
            }
        }
        self.journal = journal
        channel = state
        guard let sb = handle.pointee.super else {
            throw FWError(.corrupt, "libext2fs returned no filesystem", at: place)
        }
        let s = sb.pointee
        let size = Int(s.s_rev_level) == 0 ? 128 : Int(s.s_inode_size)
        guard size >= 128, size <= Int(handle.pointee.blocksize), size & (size - 1) == 0 else {
            // ext2fs_open2 already rejects these; kept so the decoder never trusts it blindly.
            throw FWError(.corrupt, "inode size \(size) is invalid", at: place)
        }
        inodeSize = size
        inodeCount = s.s_inodes_count
        highIDs = s.s_creator_os != UInt32(EXT2_OS_HURD)
        largeDirectories = s.s_feature_incompat & UInt32(EXT4_FEATURE_INCOMPAT_LARGEDIR) != 0
        eaInodeFeature = s.s_feature_incompat & UInt32(EXT4_FEATURE_INCOMPAT_EA_INODE) != 0
        clusterRatioBits = Int(handle.pointee.cluster_ratio_bits)
        blockSize = Int(handle.pointee.blocksize)
        blocksCount = ext2fs_blocks_count(sb)
        label = withUnsafeBytes(of: s.s_volume_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let ext4Incompat = UInt32(EXT3_FEATURE_INCOMPAT_EXTENTS | EXT4_FEATURE_INCOMPAT_64BIT
            | EXT4_FEATURE_INCOMPAT_FLEX_BG | EXT4_FEATURE_INCOMPAT_INLINE_DATA | EXT4_FEATURE_INCOMPAT_MMP
            | EXT4_FEATURE_INCOMPAT_EA_INODE | EXT4_FEATURE_INCOMPAT_CSUM_SEED | EXT4_FEATURE_INCOMPAT_ENCRYPT
            | EXT4_FEATURE_INCOMPAT_CASEFOLD | EXT4_FEATURE_INCOMPAT_LARGEDIR)
        let ext4RoCompat = UInt32(EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_GDT_CSUM
            | EXT4_FEATURE_RO_COMPAT_DIR_NLINK | EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE | EXT4_FEATURE_RO_COMPAT_METADATA_CSUM
            | EXT4_FEATURE_RO_COMPAT_BIGALLOC | EXT4_FEATURE_RO_COMPAT_QUOTA | EXT4_FEATURE_RO_COMPAT_PROJECT)
        if s.s_feature_incompat & ext4Incompat != 0 || s.s_feature_ro_compat & ext4RoCompat != 0 {
            variant = "ext4"
        } else if s.s_feature_compat & UInt32(EXT3_FEATURE_COMPAT_HAS_JOURNAL) != 0 {
            variant = "ext3"
        } else {
            variant = "ext2"
        }
        fs = owner
    }

    /// Opens a libext2fs handle read-only over `source` through `SourceIOManager` (read-write with
    /// `writesTo`, whose writes go into that overlay only: the fast-commit replay).
    static func open(_ source: any ByteSource, place: FWError.Place, writesTo overlay: BlockOverlay? = nil) throws -> (ChannelState, FileSystemHandle) {
        let state = ChannelState(source: source, writeOverlay: overlay)
        let channelName = SourceIOManager.register(state)
        defer { SourceIOManager.unregister(channelName) }
        var handle: ext2_filsys?
        // Read-only: no EXT2_FLAG_RW unless writes go to an overlay.
        let flags = Int32(EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP | (overlay == nil ? 0 : EXT2_FLAG_RW))
        let code = ext2fs_open2(channelName, nil, flags, 0, 0, SourceIOManager.manager.pointer, &handle)
        if code != 0 {
            // ext2fs_open2 frees its partial handle on failure.
            throw Self.error(code, "cannot open the ext2/3/4 filesystem", source: place, channel: state)
        }
        guard let handle else { throw FWError(.corrupt, "libext2fs returned no filesystem", at: place) }
        return (state, FileSystemHandle(handle))
    }

    // MARK: Errors

    /// libext2fs's own message for `code`, with the source error behind it if a read failed.
    static func error(_ code: errcode_t, _ what: String, source: FWError.Place, channel: ChannelState, path: String? = nil) -> FWError {
        if let underlying = channel.takeError() {
            var e = underlying
            e.message = "\(what): \(underlying.message)"
            return e.within(source, path: path)
        }
        let text = error_message(code).map { String(cString: $0) } ?? "error \(code)"
        let kind: FWError.Code
        switch code {
        case errcode_t(EXT2_ET_UNSUPP_FEATURE), errcode_t(EXT2_ET_RO_UNSUPP_FEATURE):
            kind = .unsupported
        case errcode_t(EIO):
            kind = .io
        case errcode_t(EXT2_ET_NO_MEMORY):
            kind = .limitExceeded
        default:
            kind = .corrupt
        }
        return FWError(kind, "\(what): \(text)", at: source, path: path)
    }

    func check(_ code: errcode_t, _ what: @autoclosure () -> String) throws {
        guard code != 0 else {
            // A source error libext2fs chose to tolerate must not be blamed on a later call.
            _ = channel.takeError()
            return
        }
        throw Self.error(code, what(), source: place, channel: channel)
    }

    func handle() throws -> ext2_filsys { fs.pointer }

    func inodeNumber(_ inode: UInt64) throws -> ext2_ino_t {
        guard let n = ext2_ino_t(exactly: inode), n >= 1, n <= inodeCount else {
            throw FWError(.corrupt, "inode \(inode) is outside 1...\(inodeCount)", at: place)
        }
        return n
    }

    // MARK: Inodes

    func readInode(_ inode: UInt64) throws -> Ext4Inode {
        let fs = try handle()
        let ino = try inodeNumber(inode)
        var bytes = [UInt8](repeating: 0, count: inodeSize)
        let size = Int32(inodeSize)
        let code = bytes.withUnsafeMutableBytes { raw -> errcode_t in
            guard let base = raw.baseAddress else { return errcode_t(EXT2_ET_INVALID_ARGUMENT) }
            return ext2fs_read_inode_full(fs, ino, UnsafeMutablePointer<ext2_inode>(OpaquePointer(base)), size)
        }
        try check(code, "cannot read inode \(inode)")
        do {
            return try Ext4Inode(bytes, highIDs: highIDs)
        } catch let e as FWError {
            throw FWError(e.code, "inode \(inode): \(e.message)", at: place, cause: e)
        }
    }

    public func metadata(of inode: UInt64) throws -> Metadata {
        let raw = try readInode(inode)
        guard let type = raw.fileType else {
            throw FWError(.corrupt, "inode \(inode) has an unknown file type (mode 0o\(String(raw.mode, radix: 8)))", at: place)
        }
        // A directory entry naming an inode with no links: the kernel's lookup refuses it
        // ("deleted inode referenced", EUCLEAN). Seen in copies taken while another writer ran.
        guard raw.linksCount > 0 || inode == rootInode else {
            throw FWError(.corrupt, "deleted inode referenced: inode \(inode) has a link count of 0 (the kernel refuses it)", at: place)
        }
        let (xattrs, xattrProblem) = try readableXattrs(of: inode, raw)
        var meta = Metadata(
            type: type, permissions: raw.permissions, uid: raw.uid, gid: raw.gid,
            size: raw.size(largeDirectories: largeDirectories),
            mtime: Ext4Inode.timestamp(raw.mtime, extra: raw.mtimeExtra),
            atime: Ext4Inode.timestamp(raw.atime, extra: raw.atimeExtra),
            ctime: Ext4Inode.timestamp(raw.ctime, extra: raw.ctimeExtra),
            linkCount: UInt32(raw.linksCount), inode: inode, xattrs: xattrs)
        meta.unreadableXattrs = xattrProblem
        switch type {
        case .regular:
            // A size past what the block mapping can address is a damaged i_size (2^63 bytes would
            // otherwise be archived as an endless stream of zeros): an error for this path.
            let limit = Ext4File.maximumSize(blockSize: UInt64(blockSize), extents: raw.flags & Ext4Inode.extentsFlag != 0)
            guard meta.size <= limit else {
                throw FWError(.corrupt, "file inode \(inode) claims \(meta.size) bytes, more than its block mapping can address (\(limit))",
                              at: place)
            }
        case .symlink:
            meta.symlinkTarget = try symlinkTarget(of: inode, raw)
        case .characterDevice, .blockDevice:
            meta.device = try raw.device()
        default:
            break
        }
        return meta
    }

    /// A symlink's target as readlink(2) returns it from Linux 6.13 on. A fast symlink (target in
    /// i_block) must hold exactly `i_size` bytes before a NUL, else the kernel refuses the inode
    /// ("invalid fast symlink length", EFSCORRUPTED). Any other target (a data block, inline data)
    /// is cut at the block size minus one (`nd_terminate_link`) and at its first NUL byte: the
    /// kernel hands it over as a C string, so a target of NUL bytes reads as an empty one.
    private func symlinkTarget(of inode: UInt64, _ raw: Ext4Inode) throws -> [UInt8] {
        let size = raw.size(largeDirectories: false)
        if raw.isFastSymlink(blockSize: blockSize, clusterRatioBits: clusterRatioBits, eaInodeFeature: eaInodeFeature) {
            let length = Int(min(size, 60))
            guard length > 0, length < raw.block.count, !raw.block[..<length].contains(0), raw.block[length] == 0 else {
                throw FWError(.corrupt, "invalid fast symlink length \(size) (inode \(inode)); the kernel refuses this inode", at: place)
            }
            return Array(raw.block[0..<length])
        }
        let stored = try storedTarget(of: inode, raw, length: Int(min(size, UInt64(blockSize - 1))))
        return Array(stored.prefix { $0 != 0 })
    }

    /// The first `length` bytes of a symlink's inline data or of its (extent- or block-mapped)
    /// data.
    private func storedTarget(of inode: UInt64, _ raw: Ext4Inode, length: Int) throws -> [UInt8] {
        if raw.hasInlineData {
            let fs = try handle()
            let ino = try inodeNumber(inode)
            var stored = 0
            try check(ext2fs_inline_data_size(fs, ino, &stored), "cannot size the inline symlink of inode \(inode)")
            guard stored <= Self.maximumSymlinkLength else {
                throw FWError(.corrupt, "inline symlink of inode \(inode) holds \(stored) bytes", at: place)
            }
            var buffer = [UInt8](repeating: 0, count: max(stored, 1))
            var got = stored
            let code = buffer.withUnsafeMutableBytes { ext2fs_inline_data_get(fs, ino, nil, $0.baseAddress, &got) }
            try check(code, "cannot read the inline symlink of inode \(inode)")
            guard got >= length else {
                throw FWError(.corrupt, "inline symlink of inode \(inode) holds \(got) bytes, its size says \(length)", at: place)
            }
            return Array(buffer[0..<length])
        }
        let file = try Ext4File(reader: self, inode: inode, raw: raw)
        let target = try file.readPrefix(length)
        guard target.count == length else {
            throw FWError(.corrupt, "symlink inode \(inode): read \(target.count) of \(length) target bytes", at: place)
        }
        return target
    }

    // MARK: Extended attributes

    private final class XattrCollector {
        var attributes: [ExtendedAttribute] = []
    }

    /// The xattrs of an inode as listxattr(2) sees them. A damaged xattr block costs the file its
    /// xattrs, not the file: the kernel checks the block only when the xattrs are read (the file
    /// and its children stay readable), so the attributes are left out and the reason returned
    /// for the walk to report. A damaged in-inode area with no block makes the kernel refuse the
    /// inode itself (`ext4_iget` checks it): that stays an error.
    private func readableXattrs(of inode: UInt64, _ raw: Ext4Inode) throws -> ([ExtendedAttribute], FWError?) {
        do {
            return (try extendedAttributes(of: inode, raw), nil)
        } catch var error as FWError where raw.fileACL != 0 && error.code == .corrupt {
            error.message = "xattrs left out (the file is kept, as the kernel serves it): \(error.message)"
            return ([], error)
        }
    }

    private func extendedAttributes(of inode: UInt64, _ raw: Ext4Inode) throws -> [ExtendedAttribute] {
        // Without an in-inode area or an xattr block there is nothing to read (the common case).
        guard raw.hasInodeXattrs || raw.fileACL != 0 else { return [] }
        let fs = try handle()
        let ino = try inodeNumber(inode)
        var h: OpaquePointer? = nil
        try check(ext2fs_xattrs_open(fs, ino, &h), "cannot open the xattrs of inode \(inode)")
        defer { _ = ext2fs_xattrs_close(&h) }
        try check(ext2fs_xattrs_read(h), "cannot read the xattrs of inode \(inode)")
        // ext2fs_xattrs_iterate hands over the values as stored. That is what getxattr(2)
        // returns for every attribute except POSIX ACLs, which ext4 keeps in a compact format of
        // its own; those are converted below to the VFS format exactly as the kernel does.
        // (libext2fs's own conversion in ext2fs_xattr_get writes 0 instead of the kernel's
        // 0xFFFFFFFF as the id of USER_OBJ/GROUP_OBJ/MASK/OTHER entries, so it is not used.)
        let collector = XattrCollector()
        let code = withExtendedLifetime(collector) {
            ext2fs_xattrs_iterate(h, { name, value, length, context in
                guard let name, let context else { return 0 }
                let collector = Unmanaged<XattrCollector>.fromOpaque(context).takeUnretainedValue()
                let key = String(cString: name)
                // system.data is the inline-data area, not an attribute (the kernel hides it too).
                if key == "system.data" { return 0 }
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
                collector.attributes.append(ExtendedAttribute(name: key, value: bytes))
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        }
        try check(code, "cannot list the xattrs of inode \(inode)")
        for i in collector.attributes.indices {
            let name = collector.attributes[i].name
            guard name == "system.posix_acl_access" || name == "system.posix_acl_default" else { continue }
            do {
                collector.attributes[i].value = try Ext4ACL(disk: collector.attributes[i].value).vfsBytes
            } catch let e as FWError {
                throw FWError(e.code, "inode \(inode): \(name): \(e.message)", at: place, cause: e)
            }
        }
        return collector.attributes.sorted { $0.name < $1.name }
    }

    // MARK: Directories

    private final class EntryCollector {
        var entries: [DirectoryEntry] = []
        var overLimit = false
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        let fs = try handle()
        let ino = try inodeNumber(inode)
        let collector = EntryCollector()
        let code = withExtendedLifetime(collector) {
            ext2fs_dir_iterate2(fs, ino, 0, nil, { _, _, dirent, _, _, _, context in
                guard let dirent, let context else { return 0 }
                let collector = Unmanaged<EntryCollector>.fromOpaque(context).takeUnretainedValue()
                let nameLength = Int(ext2fs_dirent_name_len(dirent))
                // The name follows the 8-byte header; libext2fs has checked it fits rec_len.
                let name = Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(dirent) + 8, count: nameLength))
                if name == [0x2E] || name == [0x2E, 0x2E] { return 0 }
                if collector.entries.count >= WalkLimits.maximumDirectoryEntries {
                    collector.overLimit = true
                    return DIRENT_ABORT
                }
                collector.entries.append(DirectoryEntry(name: name, inode: UInt64(dirent.pointee.inode)))
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        }
        try check(code, "cannot list directory inode \(inode)")
        if collector.overLimit {
            throw FWError(.limitExceeded, "directory inode \(inode) has more than \(WalkLimits.maximumDirectoryEntries) entries", at: place)
        }
        return collector.entries
    }

    // MARK: Files

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        let raw = try readInode(inode)
        guard raw.fileType == .regular else {
            throw FWError(.invalidArgument, "inode \(inode) is not a regular file", at: place)
        }
        return try Ext4File(reader: self, inode: inode, raw: raw)
    }
}

/// The owner of a libext2fs handle: closed (ext2fs_close_free) when the last reference goes, so
/// no error path closes it by hand.
final class FileSystemHandle {
    let pointer: ext2_filsys

    init(_ pointer: ext2_filsys) { self.pointer = pointer }

    deinit {
        var p: ext2_filsys? = pointer
        _ = ext2fs_close_free(&p)
    }
}
