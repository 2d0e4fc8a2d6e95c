import DiskImage
import FileSystems

extension BtrfsReader {
    /// Most subvolumes listed (a bound against a damaged root tree).
    static let maximumSubvolumes = 1 << 20
    /// Most path components followed up from a directory to its subvolume's root.
    static let maximumPathDepth = 4096

    /// Every subvolume (the top level, id 5, first), with its path from the top level, as
    /// `btrfs subvolume list -a` shows them; subvolumes being deleted (no back reference) have
    /// the path "<deleted>".
    public func subvolumes() throws -> [BtrfsSubvolumeInfo] {
        try place.placing {
            let defaultID = try defaultSubvolumeID()
            var result: [BtrfsSubvolumeInfo] = []
            var ids: [(UInt64, Bool)] = []
            try trees.forEach(in: rootTree, from: Btrfs.Key(Btrfs.fsTreeID, .rootItem, 0),
                              to: Btrfs.Key(Btrfs.lastFreeID, .rootItem, UInt64.max)) { key, item in
                guard key.type == Btrfs.ItemType.rootItem.rawValue,
                      key.objectID == Btrfs.fsTreeID || key.objectID >= Btrfs.firstFreeID else { return true }
                if ids.last?.0 != key.objectID { ids.append((key.objectID, try Btrfs.RootItem(item).isReadOnly)) }
                guard ids.count <= Self.maximumSubvolumes else {
                    throw FWError(.limitExceeded, "btrfs root tree lists more than \(Self.maximumSubvolumes) subvolumes")
                }
                return true
            }
            for (id, readOnly) in ids {
                let path = try subvolumePath(id) ?? "<deleted>"
                result.append(BtrfsSubvolumeInfo(id: id, path: path, isReadOnly: readOnly, isDefault: id == defaultID))
            }
            return result
        }
    }

    /// The path of subvolume `id` from the top level ("" for the top level), nil when no
    /// ROOT_BACKREF leads to it.
    public func subvolumePath(_ id: UInt64) throws -> String? {
        var components: [[UInt8]] = []
        var current = id
        var steps = 0
        while current != Btrfs.fsTreeID {
            steps += 1
            guard steps <= Self.maximumPathDepth else {
                throw FWError.corrupt("btrfs subvolume \(id): its back references do not reach the top level")
            }
            guard let (key, item) = try trees.first(in: rootTree, objectID: current, type: .rootBackref) else { return nil }
            let ref = try Btrfs.RootRef(item)
            components.insert(ref.name, at: 0)
            let parent = key.offset
            components.insert(contentsOf: try directoryPath(ref.directory, in: try treeRoot(parent)), at: 0)
            current = parent
        }
        return components.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
    }

    /// The names from a subvolume's root directory down to directory `object` (INODE_REF:
    /// key offset = parent directory; data: le64 index, le16 name length, name).
    func directoryPath(_ object: UInt64, in tree: Btrfs.TreeRoot) throws -> [[UInt8]] {
        var names: [[UInt8]] = []
        var current = object
        while current != Btrfs.firstFreeID {
            guard names.count < Self.maximumPathDepth else {
                throw FWError.corrupt("btrfs directory \(object) of subvolume \(tree.id): its references do not reach the root")
            }
            guard let (key, item) = try trees.first(in: tree, objectID: current, type: .inodeRef) else {
                throw FWError.corrupt("btrfs directory \(current) of subvolume \(tree.id) has no inode reference")
            }
            let length = Int(try item.u16le(at: 8))
            names.insert(try item.array(at: 10, count: length), at: 0)
            current = key.offset
        }
        return names
    }

    /// Path of the subvolume shown as the root ("" for the top level).
    public var rootSubvolumePath: String? {
        get throws { try subvolumePath(rootSubvolumeID) }
    }

    /// The filesystem's features for `inspect`: incompatible ones as `dump-super` names them,
    /// then the read-only compatible ones.
    public var featureNames: [String] {
        superBlock.incompatibleFlags.names + Btrfs.compatibleReadOnlyNames(superBlock.compatibleReadOnlyFlags)
    }

    /// The same filesystem showing `subvolume` as its root (the chunk map and the cache of tree
    /// blocks are shared): a second mount of the device with other `subvol=` options.
    public func view(_ subvolume: BtrfsSubvolume) throws -> BtrfsReader {
        try BtrfsReader(sharing: self, subvolume: subvolume)
    }
}
