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

extension BtrfsReader {
    /// Replays the log tree into overlays of the trees it changes (`Btrfs.TreeReader.overlays`):
    /// each subvolume's log tree (`Btrfs.LogReplayer`) and the data checksums it logged. A log
    /// this reader cannot replay exactly is not applied at all: the last commit is read, and the
    /// result says why.
    func replayLog() -> Btrfs.LogReplay {
        let logRoot = Btrfs.TreeRoot(id: Btrfs.treeLogID, byteNumber: superBlock.logTree, level: superBlock.logTreeLevel)
        do {
            var overlays: [UInt64: [(key: Btrfs.Key, bytes: [UInt8]?)]] = [:]
            var loggedChecksums: [(key: Btrfs.Key, bytes: [UInt8])] = []
            var items = 0
            let roots = try logTreeRoots(logRoot)
            for (subvolume, root) in roots {
                let log = try logItems(root)
                items += log.count
                loggedChecksums += log.filter { $0.key.objectID == Btrfs.extentChecksumID && $0.key.type == Btrfs.extentChecksumType }
                var replayer = Btrfs.LogReplayer(store: Btrfs.ItemStore(trees: trees, root: try treeRoot(subvolume)), log: log,
                                                 sectorSize: UInt64(superBlock.sectorSize),
                                                 noHoles: superBlock.incompatibleFlags.contains(.noHoles))
                try replayer.run()
                overlays[subvolume] = replayer.store.overlay
            }
            if let csumTree = dataChecksumTree, !loggedChecksums.isEmpty {
                overlays[csumTree.id] = try checksumOverlay(loggedChecksums, tree: csumTree)
            }
            trees.overlays = overlays
            return Btrfs.LogReplay(replayed: true, subvolumes: roots.count, items: items, warnings: [])
        } catch {
            return Btrfs.LogReplay(replayed: false, subvolumes: 0, items: 0, warnings: [
                "not replayed: \(FWError(error).message); the last commit (generation \(superBlock.generation)) is read, "
                    + "so files fsync'd since may be missing or older (the kernel replays it at mount)"])
        }
    }

    /// The log trees by subvolume id: the log root tree's ROOT_ITEMs (TREE_LOG, ROOT_ITEM, id).
    private func logTreeRoots(_ logRoot: Btrfs.TreeRoot) throws -> [(UInt64, Btrfs.TreeRoot)] {
        var roots: [(UInt64, Btrfs.TreeRoot)] = []
        for (key, item) in try trees.items(in: logRoot, objectID: Btrfs.treeLogID, type: .rootItem, limit: 1 << 16) {
            let root = try Btrfs.RootItem(item)
            guard root.level <= Btrfs.maximumLevel else {
                throw FWError.corrupt("btrfs log tree of subvolume \(key.offset) has level \(root.level), over \(Btrfs.maximumLevel)")
            }
            roots.append((key.offset, Btrfs.TreeRoot(id: Btrfs.treeLogID, byteNumber: root.byteNumber, level: root.level)))
        }
        return roots
    }

    /// Every item of one log tree, in key order.
    private func logItems(_ root: Btrfs.TreeRoot) throws -> [(key: Btrfs.Key, bytes: [UInt8])] {
        var items: [(key: Btrfs.Key, bytes: [UInt8])] = []
        try trees.forEachStored(in: root, from: Btrfs.Key(0, 0, 0), to: Btrfs.Key(UInt64.max, UInt8.max, UInt64.max)) { key, item in
            guard items.count < Btrfs.maximumLogItems else {
                throw FWError(.limitExceeded, "a btrfs log tree holds more than \(Btrfs.maximumLogItems) items")
            }
            items.append((key, item.bytes))
            return true
        }
        return items
    }

    /// The csum tree with the logged checksums in place (`btrfs_del_csums` then
    /// `btrfs_csum_file_blocks` of replay): stored items that start inside a logged range go.
    private func checksumOverlay(_ logged: [(key: Btrfs.Key, bytes: [UInt8])], tree: Btrfs.TreeRoot) throws -> [(key: Btrfs.Key, bytes: [UInt8]?)] {
        let store = Btrfs.ItemStore(trees: trees, root: tree)
        let sector = UInt64(superBlock.sectorSize)
        let size = UInt64(checksumType.size)
        for (key, bytes) in logged {
            let (span, overflow) = (UInt64(bytes.count) / size).multipliedReportingOverflow(by: sector)
            let (end, past) = key.offset.addingReportingOverflow(span)
            guard !overflow, !past, span > 0 else { continue }
            for (stored, _) in try store.items(from: key, to: Btrfs.Key(key.objectID, key.type, end - 1)) { store.delete(stored) }
            store.set(key, bytes)
        }
        return store.overlay
    }
}
