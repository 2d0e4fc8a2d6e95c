import DiskImage
import FileSystems

/// Which subvolume a reader shows as its root: the filesystem's default (`btrfs subvolume
/// set-default`, else the top level, id 5), one by id (`subvolid=`) or one by path from the top
/// level (`subvol=`), as the kernel's mount options choose it.
public enum BtrfsSubvolume: Sendable, Equatable {
    case `default`
    case id(UInt64)
    case path(String)
}

/// A subvolume as `inspect` lists it.
public struct BtrfsSubvolumeInfo: Sendable, Equatable {
    public var id: UInt64
    /// Path from the top level ("@/.snapshots/1/snapshot"); "" for the top level itself (id 5).
    public var path: String
    public var isReadOnly: Bool
    public var isDefault: Bool
}

/// A read-only btrfs filesystem in userspace, from one device.
///
/// Opening reads the superblock (its mirrors are checked when the device holds them), the
/// system chunks and the chunk tree, the root tree's entry for the chosen subvolume; inodes,
/// directories and data are read on demand through a cache of checked tree blocks.
///
/// Inode numbers given to callers encode the subvolume (an index into `subvolumeIDs`, bits
/// 48-63) and the btrfs objectid (bits 0-47), so a directory entry that is a nested subvolume
/// leads into that subvolume's tree, as the kernel shows it. See docs/readers-btrfs.md.
public final class BtrfsReader: FileSystemReader {
    public let formatName = "btrfs"
    public let sourceName: String
    public let place: FWError.Place
    public let superBlock: Btrfs.SuperBlock
    public let checksumType: Btrfs.ChecksumType
    /// Whether metadata checksums are verified (true for the four algorithms btrfs defines;
    /// false only when opened with `verifyChecksums: false`).
    public var checksumsVerified: Bool { trees.verifyChecksums && checksumType.isVerified }
    /// What the superblock mirrors said: ("primary", "ok"), ("mirror 1 at 67108864", "ok" or a
    /// problem); mirrors past the end of the device are left out.
    public private(set) var superBlockCopies: [(name: String, status: String)] = []
    /// Devices given that are not used, and why (another filesystem, a device id already
    /// present, an unreadable superblock).
    public let ignoredDevices: [(name: String, reason: String)]
    /// The devices read, by device id, with their names (this one and the members given).
    public var devices: [(id: UInt64, name: String)] {
        trees.volume.members.keys.sorted().map { ($0, trees.volume.members[$0]?.name ?? "") }
    }
    /// What became of the log tree, nil when there is none (`log_root` 0).
    public private(set) var logReplay: Btrfs.LogReplay?
    /// The subvolume shown as the root.
    public private(set) var rootSubvolumeID: UInt64 = Btrfs.fsTreeID
    public var rootInode: UInt64 { encode(treeIndex: 0, objectID: Btrfs.firstFreeID) }

    let trees: Btrfs.TreeReader
    let rootTree: Btrfs.TreeRoot
    /// The csum tree (data checksums), nil when the filesystem has none.
    private(set) var dataChecksumTree: Btrfs.TreeRoot?
    /// Subvolume ids by index (the high bits of an inode number); index 0 is the root subvolume.
    private var subvolumeIDs: [UInt64] = []
    private var subvolumeIndex: [UInt64: Int] = [:]
    private var treeRoots: [UInt64: Btrfs.TreeRoot] = [:]

    static let objectBits: UInt64 = 48
    static let objectMask: UInt64 = (1 << 48) - 1
    /// `BTRFS_EMPTY_SUBVOL_DIR_OBJECTID`: the empty directory the kernel shows for a subvolume
    /// entry whose subvolume is not there (a snapshot of a parent keeps its children's entries).
    static let emptySubvolumeDirectory: UInt64 = 2

    /// Opens the btrfs filesystem on `source` and shows `subvolume` as its root.
    /// `devices`: other devices that may be members of a multi-device filesystem (RAID); those of
    /// this filesystem are used (same fsid, a device id not yet present, the device uuid the chunk
    /// tree gives that id), the others are listed in `ignoredDevices`.
    /// `verifyChecksums: false` reads metadata whose checksums do not match (fuzzing, a damaged
    /// filesystem read as far as it goes); every other check still applies.
    /// `replayLog`: a log tree (what was fsync'd after the last commit) is replayed as the kernel
    /// replays it at mount; false reads the last commit (`--no-replay`). See `logReplay`.
    public init(source: any ByteSource, name: String, devices: [BtrfsDevice] = [], subvolume: BtrfsSubvolume = .default,
                verifyChecksums: Bool = true, replayLog: Bool = true) throws {
        sourceName = name
        place = FWError.Place(source: source, name: name)
        do {
            let (sb, copies) = try Self.readSuperBlock(source, verifyChecksums: verifyChecksums)
            superBlock = sb
            superBlockCopies = copies
            guard let type = Btrfs.ChecksumType(rawValue: sb.checksumTypeValue) else {
                throw FWError.unsupported("btrfs checksum type \(sb.checksumTypeValue) is unknown")
            }
            checksumType = type
            let volume = Btrfs.Volume(members: [sb.deviceID: .init(source: source, name: name, deviceUUID: sb.deviceUUID)],
                                      deviceCount: sb.deviceCount)
            ignoredDevices = Self.addMembers(devices, to: volume, superBlock: sb, verifyChecksums: verifyChecksums)
            for chunk in try Btrfs.systemChunks(sb.systemChunkArray, size: sb.systemChunkArraySize) {
                try volume.chunks.insert(chunk)
            }
            trees = Btrfs.TreeReader(volume: volume, superBlock: sb, checksumType: type, verifyChecksums: verifyChecksums)
            rootTree = Btrfs.TreeRoot(id: Btrfs.rootTreeID, byteNumber: sb.rootTree, level: sb.rootLevel)
            try readChunkTree()
            dataChecksumTree = try Self.checksumTree(trees, rootTree: rootTree)
            if sb.logTree != 0 {
                logReplay = replayLog ? self.replayLog()
                    : Btrfs.LogReplay(replayed: false, subvolumes: 0, items: 0, warnings: ["not replayed (--no-replay): what was fsync'd after "
                        + "the last commit (generation \(sb.generation)) is not read, so files written since may be missing or older"])
            }
            try select(subvolume)
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    /// Another view of `other`'s filesystem (`view(_:)`).
    init(sharing other: BtrfsReader, subvolume: BtrfsSubvolume) throws {
        sourceName = other.sourceName
        place = other.place
        superBlock = other.superBlock
        checksumType = other.checksumType
        superBlockCopies = other.superBlockCopies
        ignoredDevices = other.ignoredDevices
        dataChecksumTree = other.dataChecksumTree
        logReplay = other.logReplay
        trees = other.trees
        rootTree = other.rootTree
        treeRoots = other.treeRoots
        do {
            try select(subvolume)
        } catch let error as FWError {
            throw error.within(place)
        }
    }

    /// Reads and checks the primary superblock and the mirrors the device is large enough for.
    /// The primary is used, as the kernel does; when it is damaged a valid mirror with the highest
    /// generation is used instead (as `btrfs rescue super-recover` would) and the copies say so.
    static func readSuperBlock(_ source: any ByteSource, verifyChecksums: Bool = true) throws -> (Btrfs.SuperBlock, [(name: String, status: String)]) {
        var copies: [(name: String, status: String)] = []
        var valid: [Btrfs.SuperBlock] = []
        var primaryProblem: String?
        for (i, offset) in Btrfs.superBlockOffsets.enumerated() {
            guard source.size >= offset + UInt64(Btrfs.superBlockSize) else { continue }
            let name = i == 0 ? "primary" : "mirror \(i) at \(offset)"
            do {
                let sb = try superBlock(at: offset, in: source, verifyChecksum: verifyChecksums)
                if let first = valid.first, first.fsid != sb.fsid {
                    copies.append((name, "belongs to another filesystem"))
                    continue
                }
                valid.append(sb)
                copies.append((name, "ok, generation \(sb.generation)"))
            } catch let error as FWError {
                if i == 0 { primaryProblem = error.message }
                copies.append((name, error.message))
            }
        }
        if let problem = primaryProblem {
            guard let best = valid.max(by: { $0.generation < $1.generation }) else {
                throw FWError.corrupt("btrfs primary superblock: \(problem); no valid mirror")
            }
            return (best, copies)
        }
        guard let primary = valid.first else { throw FWError.corrupt("btrfs: device too small for a superblock") }
        return (primary, copies)
    }

    static func superBlock(at offset: UInt64, in source: any ByteSource, verifyChecksum: Bool = true) throws -> Btrfs.SuperBlock {
        let bytes = try source.bytes(at: offset, count: Btrfs.superBlockSize)
        let c = ByteCursor(bytes, context: "btrfs superblock at \(offset)")
        guard c.matches(Btrfs.magic, at: 0x40) else { throw FWError.corrupt("no btrfs magic at \(offset)") }
        let sb = try Btrfs.SuperBlock(c)
        guard sb.byteNumber == offset else {
            throw FWError.corrupt("btrfs superblock at \(offset) says it is at \(sb.byteNumber)")
        }
        if verifyChecksum, let type = Btrfs.ChecksumType(rawValue: sb.checksumTypeValue), !type.verify(bytes) {
            throw FWError.corrupt("btrfs superblock at \(offset): \(type.name) checksum mismatch")
        }
        let sector = sb.sectorSize, node = sb.nodeSize
        guard sector >= 4096, sector <= 65536, sector & (sector - 1) == 0 else {
            throw FWError.corrupt("btrfs sector size \(sector) is not a power of two from 4096 to 65536")
        }
        guard node >= sector, node <= 65536, node & (node - 1) == 0 else {
            throw FWError.corrupt("btrfs node size \(node) is not a power of two from the sector size to 65536")
        }
        let unknown = sb.incompatibleFlags.subtracting(Btrfs.IncompatibleFeatures.supported)
        guard unknown.isEmpty else {
            throw FWError.unsupported("btrfs incompatible feature(s) \(unknown) are not read yet")
        }
        guard sb.rootLevel <= Btrfs.maximumLevel, sb.chunkRootLevel <= Btrfs.maximumLevel else {
            throw FWError.corrupt("btrfs root level \(sb.rootLevel) / chunk root level \(sb.chunkRootLevel) over \(Btrfs.maximumLevel)")
        }
        return sb
    }

    /// Adds every CHUNK_ITEM of the chunk tree to the map (the system chunks map the chunk tree),
    /// then checks each present device against the chunk tree's DEV_ITEM for its id (the
    /// device's uuid): a device that claims an id of this filesystem but is another is refused.
    private func readChunkTree() throws {
        let root = Btrfs.TreeRoot(id: Btrfs.chunkTreeID, byteNumber: superBlock.chunkTree, level: superBlock.chunkRootLevel)
        var found: [Btrfs.Chunk] = []
        try trees.forEach(in: root, from: Btrfs.Key(Btrfs.firstChunkTreeID, .chunkItem, 0),
                          to: Btrfs.Key(Btrfs.firstChunkTreeID, .chunkItem, UInt64.max)) { key, item in
            found.append(try Btrfs.Chunk(logical: key.offset, item, at: 0))
            return true
        }
        for chunk in found { try trees.volume.chunks.insert(chunk) }
        var uuids: [UInt64: [UInt8]] = [:]
        try trees.forEach(in: root, from: Btrfs.Key(Btrfs.deviceItemsID, .deviceItem, 0),
                          to: Btrfs.Key(Btrfs.deviceItemsID, .deviceItem, UInt64.max)) { key, item in
            uuids[key.offset] = try item.array(at: 66, count: 16)
            return uuids.count < 1 << 16
        }
        for (id, member) in trees.volume.members {
            if let uuid = uuids[id], uuid != member.deviceUUID {
                throw FWError.corrupt("btrfs device \(member.name) says it is device \(id), but its uuid \(Btrfs.uuidString(member.deviceUUID)) "
                    + "is not the chunk tree's \(Btrfs.uuidString(uuid)) for that id")
            }
        }
    }

    /// Adds the devices of `devices` that belong to the filesystem of `sb` (same fsid and
    /// generation, an id not yet present); returns the others given by the user with the reason.
    private static func addMembers(_ devices: [BtrfsDevice], to volume: Btrfs.Volume, superBlock sb: Btrfs.SuperBlock,
                                   verifyChecksums: Bool) -> [(name: String, reason: String)] {
        var ignored: [(name: String, reason: String)] = []
        for device in devices {
            let before = ignored.count
            defer { if !device.isGiven { ignored.removeSubrange(before...) } }
            let other: Btrfs.SuperBlock
            do {
                other = try readSuperBlock(device.source, verifyChecksums: verifyChecksums).0
            } catch {
                ignored.append((device.name, "no readable btrfs superblock: \(FWError(error).message)"))
                continue
            }
            if other.fsid != sb.fsid {
                ignored.append((device.name, "another btrfs filesystem (fsid \(other.uuidString))"))
            } else if let present = volume.members[other.deviceID] {
                ignored.append((device.name, "device id \(other.deviceID) is already read from \(present.name)"))
            } else if other.generation != sb.generation {
                ignored.append((device.name, "device \(other.deviceID) at generation \(other.generation), the filesystem's is \(sb.generation) (a stale member)"))
            } else {
                volume.add(other.deviceID, .init(source: device.source, name: device.name, deviceUUID: other.deviceUUID))
            }
        }
        return ignored
    }

    // MARK: Subvolumes

    /// Chooses the root subvolume.
    private func select(_ subvolume: BtrfsSubvolume) throws {
        switch subvolume {
        case .default:
            rootSubvolumeID = try defaultSubvolumeID()
        case .id(let id):
            rootSubvolumeID = id == 0 ? try defaultSubvolumeID() : id
        case .path(let path):
            rootSubvolumeID = Btrfs.fsTreeID
            try resetSubvolumes()
            let components = PathComponents.split(Array(path.utf8))
            if !components.isEmpty {
                guard let inode = try lookup(Array(path.utf8), followLast: true) else {
                    throw FWError(.notFound, "btrfs subvolume path \(path) does not exist")
                }
                let (tree, object) = try decode(inode)
                guard object == Btrfs.firstFreeID else {
                    throw FWError(.invalidArgument, "btrfs path \(path) is not a subvolume (as the kernel says: not a valid subvolume)")
                }
                rootSubvolumeID = tree
            }
        }
        try resetSubvolumes()
        let root = try metadata(of: rootInode)
        guard root.type == .directory else {
            throw FWError.corrupt("btrfs subvolume \(rootSubvolumeID) root inode is not a directory")
        }
    }

    private func resetSubvolumes() throws {
        subvolumeIDs = []
        subvolumeIndex = [:]
        _ = try treeIndex(rootSubvolumeID)
    }

    /// The subvolume the filesystem mounts without options: the root tree directory's "default"
    /// entry, else the top level (5).
    public func defaultSubvolumeID() throws -> UInt64 {
        let name = Array("default".utf8)
        let key = Self.nameKey(superBlock.rootDirectoryID, name)
        var id = Btrfs.fsTreeID
        try trees.forEach(in: rootTree, from: key, to: key) { _, item in
            if let entry = try Btrfs.DirItem.all(item).first(where: { $0.name == name }), entry.location.objectID != 0 {
                id = entry.location.objectID
            }
            return false
        }
        return id
    }

    /// `btrfs_name_hash`: crc32c seeded with ~1, without the final inversion.
    static func nameHash(_ name: [UInt8]) -> UInt64 {
        UInt64(~CRC32C.checksum(name, seed: 1))
    }

    /// The key of the DIR_ITEM that holds `name` in `directory` (with the names of its hash).
    static func nameKey(_ directory: UInt64, _ name: [UInt8]) -> Btrfs.Key {
        Btrfs.Key(directory, .dirItem, nameHash(name))
    }

    /// The tree root of subvolume `id` from its ROOT_ITEM.
    func treeRoot(_ id: UInt64) throws -> Btrfs.TreeRoot {
        if let root = treeRoots[id] { return root }
        guard id == Btrfs.fsTreeID || (id >= Btrfs.firstFreeID && id <= Btrfs.lastFreeID) else {
            throw FWError(.notFound, "btrfs subvolume id \(id) is not a subvolume id")
        }
        guard let (_, item) = try trees.first(in: rootTree, objectID: id, type: .rootItem) else {
            throw FWError(.notFound, "btrfs subvolume \(id) does not exist")
        }
        let root = try Btrfs.RootItem(item)
        guard root.level <= Btrfs.maximumLevel else {
            throw FWError.corrupt("btrfs subvolume \(id) root level \(root.level) over \(Btrfs.maximumLevel)")
        }
        let tree = Btrfs.TreeRoot(id: id, byteNumber: root.byteNumber, level: root.level)
        treeRoots[id] = tree
        return tree
    }

    private func treeIndex(_ id: UInt64) throws -> Int {
        if let index = subvolumeIndex[id] { return index }
        _ = try treeRoot(id)
        guard subvolumeIDs.count < 1 << 16 else {
            throw FWError(.limitExceeded, "btrfs: more than 65536 subvolumes in one view")
        }
        subvolumeIDs.append(id)
        subvolumeIndex[id] = subvolumeIDs.count - 1
        return subvolumeIDs.count - 1
    }

    func encode(treeIndex: Int, objectID: UInt64) -> UInt64 {
        UInt64(treeIndex) << Self.objectBits | objectID
    }

    /// The subvolume id and objectid of an inode number this reader gave out.
    func decode(_ inode: UInt64) throws -> (tree: UInt64, object: UInt64) {
        let index = Int(inode >> Self.objectBits)
        guard index < subvolumeIDs.count else {
            throw FWError(.notFound, "btrfs inode number \(inode) was not given out by this reader")
        }
        return (subvolumeIDs[index], inode & Self.objectMask)
    }

    // MARK: FileSystemReader

    public func metadata(of inode: UInt64) throws -> Metadata {
        try place.placing {
            let (tree, object) = try decode(inode)
            if object == Self.emptySubvolumeDirectory {
                return Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0, mtime: Timestamp(seconds: 0),
                                linkCount: 1, inode: inode)
            }
            let root = try treeRoot(tree)
            let item = try inodeItem(root, object)
            guard let type = Metadata.fileType(mode: item.mode) else {
                throw FWError.corrupt("btrfs inode \(object) of subvolume \(tree): unknown file type in mode 0o\(String(item.mode, radix: 8))")
            }
            let fields = try TypedFields(type, storedSize: item.size, symlinkTarget: {
                try checkSymlinkLength(item.size, inode: object)
                return try BtrfsFile(reader: self, tree: root, object: object, size: item.size).readPrefix(Int(item.size))
            }, device: {
                // The kernel stores its own dev_t (MKDEV: major << 20 | minor, 32 bits), not the
                // userspace encoding.
                let dev = UInt32(truncatingIfNeeded: item.rdev)
                return DeviceNumber(major: dev >> 20, minor: dev & 0xFFFFF)
            })
            return Metadata(type: type, permissions: UInt16(item.mode & 0o7777), uid: item.uid, gid: item.gid, size: fields.size,
                            mtime: item.mtime, atime: item.atime, ctime: item.ctime, linkCount: item.linkCount, inode: inode,
                            symlinkTarget: fields.symlinkTarget, device: fields.device, xattrs: try xattrs(root, object))
        }
    }

    func inodeItem(_ root: Btrfs.TreeRoot, _ object: UInt64) throws -> Btrfs.InodeItem {
        let key = Btrfs.Key(object, .inodeItem, 0)
        var found: Btrfs.InodeItem?
        try trees.forEach(in: root, from: key, to: key) { _, item in
            found = try Btrfs.InodeItem(item)
            return false
        }
        guard let found else { throw FWError(.notFound, "btrfs inode \(object) of subvolume \(root.id) does not exist") }
        // Linux's MAX_LFS_FILESIZE: a larger i_size is negative to the kernel.
        guard found.size <= UInt64(Int64.max) else {
            throw FWError.corrupt("btrfs inode \(object) of subvolume \(root.id) has a size of \(found.size) bytes, over 2^63-1")
        }
        return found
    }

    func xattrs(_ root: Btrfs.TreeRoot, _ object: UInt64) throws -> [ExtendedAttribute] {
        var result: [ExtendedAttribute] = []
        for (_, item) in try trees.items(in: root, objectID: object, type: .xattrItem, limit: 65536) {
            for entry in try Btrfs.DirItem.all(item) {
                result.append(ExtendedAttribute(name: String(decoding: entry.name, as: UTF8.self), value: entry.data))
            }
        }
        return result
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        try place.placing {
            let (tree, object) = try decode(inode)
            if object == Self.emptySubvolumeDirectory { return [] }
            let root = try treeRoot(tree)
            var entries: [DirectoryEntry] = []
            var problem: FWError?
            try trees.forEach(in: root, from: Btrfs.Key(object, .dirIndex, 0), to: Btrfs.Key(object, .dirIndex, UInt64.max)) { _, item in
                for entry in try Btrfs.DirItem.all(item) {
                    guard Self.isValidName(entry.name) else {
                        problem = FWError.corrupt("btrfs directory \(object) of subvolume \(tree) holds an invalid name")
                        return false
                    }
                    entries.append(DirectoryEntry(name: entry.name, inode: try target(of: entry, in: tree, directory: object)))
                }
                guard entries.count <= WalkLimits.maximumDirectoryEntries else {
                    problem = FWError(.limitExceeded, "btrfs directory \(object) has more than \(WalkLimits.maximumDirectoryEntries) entries")
                    return false
                }
                return true
            }
            if let problem { throw problem }
            return entries
        }
    }

    public func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry? {
        try place.placing {
            let (tree, object) = try decode(directory)
            if object == Self.emptySubvolumeDirectory { return nil }
            let root = try treeRoot(tree)
            let key = Self.nameKey(object, name)
            var found: DirectoryEntry?
            try trees.forEach(in: root, from: key, to: key) { _, item in
                if let entry = try Btrfs.DirItem.all(item).first(where: { $0.name == name }) {
                    found = DirectoryEntry(name: name, inode: try target(of: entry, in: tree, directory: object))
                }
                return false
            }
            return found
        }
    }

    static func isValidName(_ name: [UInt8]) -> Bool {
        !name.isEmpty && name.count <= 255 && !name.contains(0x2F) && !name.contains(0) && name != [0x2E] && name != [0x2E, 0x2E]
    }

    /// The inode a directory entry leads to: an inode of the same tree, or the root directory of
    /// a subvolume (when the subvolume's ROOT_REF names this directory and name, as the kernel's
    /// `fixup_tree_root_location` checks), else the kernel's empty placeholder directory.
    private func target(of entry: Btrfs.DirItem, in tree: UInt64, directory: UInt64) throws -> UInt64 {
        let index = try treeIndex(tree)
        switch entry.location.type {
        case Btrfs.ItemType.inodeItem.rawValue:
            guard entry.location.objectID <= Self.objectMask, entry.location.objectID >= Btrfs.firstFreeID else {
                throw FWError.corrupt("btrfs directory \(directory) of subvolume \(tree) points to objectid \(entry.location.objectID)")
            }
            return encode(treeIndex: index, objectID: entry.location.objectID)
        case Btrfs.ItemType.rootItem.rawValue:
            let child = entry.location.objectID
            guard try subvolumeReference(parent: tree, child: child, directory: directory, name: entry.name) else {
                return encode(treeIndex: index, objectID: Self.emptySubvolumeDirectory)
            }
            return encode(treeIndex: try treeIndex(child), objectID: Btrfs.firstFreeID)
        default:
            throw FWError.corrupt("btrfs directory \(directory) of subvolume \(tree): entry location of type \(entry.location.type)")
        }
    }

    /// Whether the root tree's ROOT_REF (parent, child) names `directory` and `name`.
    private func subvolumeReference(parent: UInt64, child: UInt64, directory: UInt64, name: [UInt8]) throws -> Bool {
        let key = Btrfs.Key(parent, .rootRef, child)
        var matches = false
        try trees.forEach(in: rootTree, from: key, to: key) { _, item in
            let ref = try Btrfs.RootRef(item)
            matches = ref.directory == directory && ref.name == name
            return false
        }
        return matches
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        try place.placing {
            let (tree, object) = try decode(inode)
            let root = try treeRoot(tree)
            let item = try inodeItem(root, object)
            guard Metadata.fileType(mode: item.mode) == .regular else {
                throw FWError(.invalidArgument, "btrfs inode \(object) of subvolume \(tree) is not a regular file")
            }
            let verify = trees.verifyChecksums && item.flags & Btrfs.inodeNoDataSum == 0
            return BtrfsFile(reader: self, tree: root, object: object, size: item.size,
                             verifier: verify ? dataChecksumTree.map { Btrfs.DataVerifier(reader: self, tree: $0) } : nil)
        }
    }

}

extension Btrfs {
    /// ROOT_REF / ROOT_BACKREF (`struct btrfs_root_ref`, 18 bytes then the name): 0 `dirid`,
    /// 8 `sequence`, 16 `name_len`.
    struct RootRef {
        var directory: UInt64
        var name: [UInt8]

        init(_ c: ByteCursor) throws {
            directory = try c.u64le(at: 0)
            name = try c.array(at: 18, count: Int(try c.u16le(at: 16)))
        }
    }
}

extension BtrfsReader {
    /// Where the copy `mirror` of a logical address lives on this device (the one opened; nil
    /// when it holds no such copy): for diagnostics and tests.
    public func physicalOffset(_ logical: UInt64, mirror: Int = 0) throws -> UInt64? {
        let copies = try trees.volume.chunks.locate(logical).copies.filter { $0.deviceID == superBlock.deviceID }
        return mirror < copies.count ? copies[mirror].offset : nil
    }
}
