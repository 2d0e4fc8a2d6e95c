import DiskImage
import FileSystems

extension Btrfs {
    /// `BTRFS_TREE_LOG_OBJECTID` (-6): the objectid of the log root tree's ROOT_ITEMs, one per
    /// subvolume with a log tree (the key's offset is the subvolume id).
    static let treeLogID: UInt64 = 0xFFFF_FFFF_FFFF_FFFA
    /// `BTRFS_DIR_LOG_ITEM_KEY`, `BTRFS_DIR_LOG_INDEX_KEY`: the ranges of a directory's DIR_ITEM
    /// and DIR_INDEX keys a log tree speaks for (`struct btrfs_dir_log_item`: 0 `end`).
    static let dirLogItemType: UInt8 = 60
    static let dirLogIndexType: UInt8 = 72
    /// Items one log tree may hold before replay gives up (a log holds what was fsync'd since
    /// the last commit, at most 30 seconds of changes by default).
    static let maximumLogItems = 1 << 20

    /// What became of the log tree (`log_root`): replayed as the kernel replays it at mount, or
    /// not (`--no-replay`, or a log this reader cannot replay exactly), with the reason.
    public struct LogReplay: Sendable, Equatable {
        /// The log was applied; false: the last commit is read.
        public var replayed: Bool
        /// Subvolumes whose log tree was replayed, and the log items read.
        public var subvolumes: Int
        public var items: Int
        /// Why it was not replayed ("not replayed: ...").
        public var warnings: [String]
    }

    /// One subvolume tree as log replay changes it: the tree as stored, with what replay wrote
    /// (bytes) or deleted (nil) on top. Small: a log holds the changes of one transaction.
    final class ItemStore {
        let trees: TreeReader
        let root: TreeRoot
        private(set) var changes: [Key: [UInt8]?] = [:]
        /// The changed keys by objectid and type: replay's range reads stay within one of these,
        /// so each reads its own few changes, not all of them.
        private var changedKeys: [Prefix: [Key]] = [:]

        struct Prefix: Hashable {
            var objectID: UInt64
            var type: UInt8
        }
        /// Items (stored and changed) replay may look at in all, so that a hostile log cannot
        /// keep it busy for hours: far more than a real log's replay reads.
        static let maximumReads = 1 << 26
        private var budget = maximumReads

        private func spend(_ count: Int) throws {
            budget -= count
            guard budget >= 0 else {
                throw FWError(.limitExceeded, "btrfs log replay read more than \(Self.maximumReads) items")
            }
        }

        init(trees: TreeReader, root: TreeRoot) {
            self.trees = trees
            self.root = root
        }

        func item(_ key: Key) throws -> [UInt8]? {
            try spend(1)
            if let change = changes[key] { return change }
            var found: [UInt8]?
            try trees.forEachStored(in: root, from: key, to: key) { _, item in
                found = item.bytes
                return false
            }
            return found
        }

        /// The items with keys in `low...high`, in key order.
        func items(from low: Key, to high: Key) throws -> [(key: Key, bytes: [UInt8])] {
            var result: [(key: Key, bytes: [UInt8])] = []
            try trees.forEachStored(in: root, from: low, to: high) { key, item in
                try spend(1)
                if changes[key] == nil { result.append((key, item.bytes)) }
                return true
            }
            let candidates: [Key]
            if low.objectID == high.objectID, low.type == high.type {
                candidates = changedKeys[Prefix(objectID: low.objectID, type: low.type)] ?? []
            } else {
                candidates = Array(changes.keys)
            }
            try spend(candidates.count)
            for key in candidates where key >= low && key <= high {
                if let bytes = changes[key] ?? nil { result.append((key, bytes)) }
            }
            return result.sorted { $0.key < $1.key }
        }

        /// The items with this objectid and type.
        func items(_ objectID: UInt64, _ type: UInt8) throws -> [(key: Key, bytes: [UInt8])] {
            try items(from: Key(objectID, type, 0), to: Key(objectID, type, UInt64.max))
        }

        func set(_ key: Key, _ bytes: [UInt8]) { change(key, to: bytes) }
        func delete(_ key: Key) { change(key, to: nil) }

        private func change(_ key: Key, to bytes: [UInt8]?) {
            if changes.updateValue(bytes, forKey: key) == nil {
                changedKeys[Prefix(objectID: key.objectID, type: key.type), default: []].append(key)
            }
        }

        /// What replay changed, sorted by key (`TreeReader.overlays`).
        var overlay: [(key: Key, bytes: [UInt8]?)] {
            changes.map { (key: $0.key, bytes: $0.value) }.sorted { $0.key < $1.key }
        }
    }

    /// The names of an INODE_REF item (`struct btrfs_inode_ref`: 0 `index`, 8 `name_len`, the
    /// name; several when one inode has several names in one directory).
    struct InodeRef: Equatable {
        var index: UInt64
        var name: [UInt8]

        static func all(_ bytes: [UInt8]) throws -> [InodeRef] {
            let c = ByteCursor(bytes, context: "btrfs inode ref")
            var result: [InodeRef] = []
            var position = 0
            while position < c.count {
                let length = Int(try c.u16le(at: position + 8))
                result.append(InodeRef(index: try c.u64le(at: position), name: try c.array(at: position + 10, count: length)))
                position += 10 + length
            }
            return result
        }

        static func encode(_ refs: [InodeRef]) -> [UInt8] {
            var bytes: [UInt8] = []
            for ref in refs {
                bytes.appendInteger(ref.index)
                bytes.appendInteger(UInt16(ref.name.count))
                bytes += ref.name
            }
            return bytes
        }
    }
}

extension Btrfs.DirItem {
    /// The item bytes of `entries` (transid 0: this reader does not use it).
    static func encode(_ entries: [Btrfs.DirItem]) -> [UInt8] {
        var bytes: [UInt8] = []
        for entry in entries {
            bytes.appendInteger(entry.location.objectID)
            bytes.append(entry.location.type)
            bytes.appendInteger(entry.location.offset)
            bytes.appendInteger(UInt64(0))
            bytes.appendInteger(UInt16(entry.data.count))
            bytes.appendInteger(UInt16(entry.name.count))
            bytes.append(entry.type)
            bytes += entry.name + entry.data
        }
        return bytes
    }
}

extension Btrfs {
    /// The kernel's log replay (fs/btrfs/tree-log.c, `btrfs_recover_log_trees`) of one
    /// subvolume's log tree into its `ItemStore`: inode items first (with the deletions of
    /// directory entries and xattrs the log speaks for, and each file cut to its logged size),
    /// then directory index entries, then xattrs, inode references, file extents and directory
    /// items, and last each replayed inode's link count from its references. What the kernel
    /// does that this does not (extended inode refs, subvolume entries, an inline extent cut in
    /// the middle) is an error, so the caller reads the last commit instead of a near miss.
    struct LogReplayer {
        let store: ItemStore
        /// The log tree's items, in key order.
        let log: [(key: Key, bytes: [UInt8])]
        private let logItems: [Key: [UInt8]]
        let sectorSize: UInt64
        let noHoles: Bool
        /// Inodes whose link count is recounted at the end (`link_to_fixup_dir`).
        private var fixups = Set<UInt64>()
        /// Inodes logged with no links (an O_TMPFILE fsync'd before its link): skipped.
        private var ignored = Set<UInt64>()

        static let extentItemSize = 53
        static let directoryType: UInt8 = 2

        init(store: ItemStore, log: [(key: Key, bytes: [UInt8])], sectorSize: UInt64, noHoles: Bool) {
            self.store = store
            self.log = log
            logItems = Dictionary(log.map { ($0.key, $0.bytes) }, uniquingKeysWith: { first, _ in first })
            self.sectorSize = sectorSize
            self.noHoles = noHoles
        }

        mutating func run() throws {
            // LOG_WALK_REPLAY_INODES
            for (key, bytes) in log where key.type == ItemType.inodeItem.rawValue {
                guard try Self.u32(bytes, 40) != 0 else {
                    ignored.insert(key.objectID)
                    continue
                }
                try replayXattrDeletes(key.objectID)
                let mode = try Self.u32(bytes, 52)
                if Self.isDirectory(mode) { try replayDirectoryDeletes(key.objectID, all: false) }
                try overwriteInode(key, bytes)
                if Self.isRegular(mode), let inode = try store.item(key) {
                    let size = try Self.u64(inode, 16)
                    try dropExtents(key.objectID, from: Self.align(size, sectorSize), to: UInt64.max)
                }
                fixups.insert(key.objectID)
            }
            // LOG_WALK_REPLAY_DIR_INDEX
            for (key, bytes) in log where key.type == ItemType.dirIndex.rawValue && !ignored.contains(key.objectID) {
                try replayDirectoryItem(key, bytes)
            }
            // LOG_WALK_REPLAY_ALL
            for (key, bytes) in log where !ignored.contains(key.objectID) {
                switch key.type {
                case ItemType.xattrItem.rawValue: store.set(key, bytes)
                case ItemType.inodeRef.rawValue: try addInodeRef(key, bytes)
                case ItemType.inodeExtref.rawValue:
                    throw FWError.unsupported("extended inode references (inode \(key.objectID)) are not replayed")
                case ItemType.extentData.rawValue: try replayExtent(key, bytes)
                case ItemType.dirItem.rawValue: try replayDirectoryItem(key, bytes)
                default: break
                }
            }
            try fixLinkCounts()
        }

        // MARK: Inodes

        /// `overwrite_item` of an inode item: the logged item, with the stored `nbytes`; a
        /// directory keeps its stored size (replayed entries change it); an item logged only
        /// to say the inode exists (generation 0) changes nothing but a regular file's size.
        private func overwriteInode(_ key: Key, _ logged: [UInt8]) throws {
            var item = logged
            let mode = try Self.u32(logged, 52)
            guard let stored = try store.item(key) else {
                try item.setInteger(UInt64(0), at: 24)
                if Self.isDirectory(mode) { try item.setInteger(UInt64(0), at: 16) }
                store.set(key, item)
                return
            }
            guard stored != logged else { return }
            let storedMode = try Self.u32(stored, 52)
            if try Self.u64(logged, 0) == 0 {
                let size = try Self.u64(logged, 16)
                if Self.isRegular(mode), Self.isRegular(storedMode), size != 0 {
                    var updated = stored
                    try updated.setInteger(size, at: 16)
                    store.set(key, updated)
                }
                return
            }
            try item.setInteger(try Self.u64(stored, 24), at: 24)
            if Self.isDirectory(mode) {
                try item.setInteger(Self.isDirectory(storedMode) ? try Self.u64(stored, 16) : 0, at: 16)
            }
            store.set(key, item)
        }

        private func inodeExists(_ objectID: UInt64) throws -> Bool {
            try store.item(Key(objectID, .inodeItem, 0)) != nil
        }

        /// Adds `delta` to a field of an inode item (a directory's size, a link count).
        private func adjust(_ objectID: UInt64, size delta: Int64 = 0, links: Int64 = 0) throws {
            let key = Key(objectID, .inodeItem, 0)
            guard var item = try store.item(key) else { return }
            if delta != 0 {
                let (size, overflow) = Int64(bitPattern: try Self.u64(item, 16)).addingReportingOverflow(delta)
                if !overflow { try item.setInteger(UInt64(bitPattern: max(0, size)), at: 16) }
            }
            if links != 0 {
                let count = Int64(try Self.u32(item, 40))
                try item.setInteger(UInt32(clamping: max(0, count + links)), at: 40)
            }
            store.set(key, item)
        }

        /// `replay_xattr_deletes`: the stored xattrs of a logged inode that the log does not hold.
        private func replayXattrDeletes(_ objectID: UInt64) throws {
            for (key, _) in try store.items(objectID, ItemType.xattrItem.rawValue) {
                let entries = try storedEntries(key), logged = try loggedEntries(key)
                let kept = entries.filter { entry in logged.contains { $0.name == entry.name } }
                if kept.count != entries.count { keep(DirItem.encode(kept), at: key) }
            }
        }

        /// Writes an item of names (entries, references) back; without any, the item goes.
        private func keep(_ bytes: [UInt8], at key: Key) {
            bytes.isEmpty ? store.delete(key) : store.set(key, bytes)
        }

        // MARK: Directory entries

        /// The entries (names) of the stored DIR_ITEM, DIR_INDEX or XATTR_ITEM item at `key`.
        private func storedEntries(_ key: Key) throws -> [DirItem] {
            try store.item(key).map { try DirItem.all(ByteCursor($0, context: "btrfs item \(key)")) } ?? []
        }

        private func loggedEntries(_ key: Key) throws -> [DirItem] {
            try logItems[key].map { try DirItem.all(ByteCursor($0, context: "btrfs logged item \(key)")) } ?? []
        }

        /// The entry called `name` in the DIR_ITEM or DIR_INDEX item at `key`, if stored.
        private func storedEntry(_ key: Key, named name: [UInt8]) throws -> DirItem? {
            try storedEntries(key).first { $0.name == name }
        }

        /// Removes the entry `name` from the item at `key` (the item goes with its last entry).
        private func removeEntry(_ key: Key, named name: [UInt8]) throws -> Bool {
            let entries = try storedEntries(key)
            let kept = entries.filter { $0.name != name }
            guard kept.count != entries.count else { return false }
            keep(DirItem.encode(kept), at: key)
            return true
        }

        /// The inode an entry leads to; a subvolume entry is not replayed.
        private func target(_ entry: DirItem) throws -> UInt64 {
            guard entry.location.type == ItemType.inodeItem.rawValue else {
                throw FWError.unsupported("a logged directory entry of a subvolume is not replayed")
            }
            return entry.location.objectID
        }

        /// `btrfs_unlink_inode`: the name's DIR_ITEM and DIR_INDEX entries and inode reference go,
        /// the directory shrinks by twice the name, the inode loses a link.
        private func unlink(_ directory: UInt64, _ objectID: UInt64, _ name: [UInt8]) throws {
            let refKey = Key(objectID, .inodeRef, directory)
            guard let refBytes = try store.item(refKey), case let refs = try InodeRef.all(refBytes),
                  let ref = refs.first(where: { $0.name == name }) else {
                throw FWError.corrupt("btrfs log replay: inode \(objectID) has no reference named \(String(decoding: name, as: UTF8.self)) in directory \(directory)")
            }
            keep(InodeRef.encode(refs.filter { $0.name != name }), at: refKey)
            guard try removeEntry(BtrfsReader.nameKey(directory, name), named: name),
                  try removeEntry(Key(directory, .dirIndex, ref.index), named: name) else {
                throw FWError.corrupt("btrfs log replay: directory \(directory) has no entry \(String(decoding: name, as: UTF8.self)) for inode \(objectID)")
            }
            try adjust(directory, size: -2 * Int64(name.count))
            try adjust(objectID, links: -1)
        }

        /// `btrfs_add_link`: DIR_ITEM and DIR_INDEX entries for `name` (and, with `reference`, the
        /// inode reference); false when the name is there already (the kernel's -EEXIST).
        @discardableResult
        private func addLink(_ directory: UInt64, _ objectID: UInt64, _ name: [UInt8], index: UInt64, reference: Bool) throws -> Bool {
            guard let inode = try store.item(Key(objectID, .inodeItem, 0)) else { return false }
            let refKey = Key(objectID, .inodeRef, directory)
            var refs = try store.item(refKey).map(InodeRef.all) ?? []
            let itemKey = BtrfsReader.nameKey(directory, name)
            if reference, refs.contains(where: { $0.name == name }) { return false }
            if try storedEntry(itemKey, named: name) != nil { return false }
            if reference {
                refs.append(InodeRef(index: index, name: name))
                store.set(refKey, InodeRef.encode(refs))
            }
            let entry = DirItem(location: Key(objectID, .inodeItem, 0), type: Self.fileType(try Self.u32(inode, 52)), name: name, data: [])
            store.set(itemKey, DirItem.encode(try storedEntries(itemKey) + [entry]))
            store.set(Key(directory, .dirIndex, index), DirItem.encode([entry]))
            try adjust(directory, size: 2 * Int64(name.count))
            return true
        }

        /// `replay_dir_deletes`: in each key range the log speaks for (every key with `all`),
        /// the stored entries the log does not hold are unlinked.
        private mutating func replayDirectoryDeletes(_ directory: UInt64, all: Bool) throws {
            guard try inodeExists(directory) else { return }
            for (logType, entryType) in [(Btrfs.dirLogItemType, ItemType.dirItem.rawValue), (Btrfs.dirLogIndexType, ItemType.dirIndex.rawValue)] {
                var ranges: [(UInt64, UInt64)] = [(0, UInt64.max)]
                if !all {
                    ranges = try log.filter { $0.key.objectID == directory && $0.key.type == logType }
                        .map { ($0.key.offset, try Self.u64($0.bytes, 0)) }
                }
                for (start, end) in ranges where start <= end {
                    for (key, bytes) in try store.items(from: Key(directory, entryType, start), to: Key(directory, entryType, end)) {
                        let logged = all ? [] : try loggedEntries(key)
                        for entry in try DirItem.all(ByteCursor(bytes, context: "btrfs item \(key)")) {
                            if logged.contains(where: { $0.name == entry.name }) { continue }
                            let objectID = try target(entry)
                            fixups.insert(objectID)
                            try unlink(directory, objectID, entry.name)
                        }
                    }
                }
            }
        }

        /// `replay_one_dir_item`: each name of a logged DIR_INDEX or DIR_ITEM item.
        private mutating func replayDirectoryItem(_ key: Key, _ bytes: [UInt8]) throws {
            for entry in try DirItem.all(ByteCursor(bytes, context: "btrfs logged directory item \(key)")) {
                if try replayName(key, entry), entry.type != Self.directoryType {
                    fixups.insert(entry.location.objectID)
                }
            }
        }

        /// `replay_one_name`: true when the name was added.
        private mutating func replayName(_ key: Key, _ entry: DirItem) throws -> Bool {
            let directory = key.objectID
            guard try inodeExists(directory) else {
                throw FWError.corrupt("btrfs log replay: directory \(directory) of a logged entry does not exist")
            }
            let objectID = try target(entry)
            let exists = try inodeExists(objectID)
            let isIndex = key.type == ItemType.dirIndex.rawValue
            let storedKey = isIndex ? key : BtrfsReader.nameKey(directory, entry.name)
            if let stored = try storedEntry(storedKey, named: entry.name) {
                if stored.location == entry.location, stored.type == entry.type { return false }
                guard exists else {
                    if isIndex { try adjust(directory, size: 2 * Int64(entry.name.count)) }
                    return false
                }
                let other = try target(stored)
                fixups.insert(other)
                try unlink(directory, other, entry.name)
                guard isIndex else { return false }
            } else if !isIndex {
                return false
            }
            // Added later by the inode reference, when the log holds one for this name.
            if let refs = logItems[Key(objectID, .inodeRef, directory)], try InodeRef.all(refs).contains(where: { $0.name == entry.name }) {
                return false
            }
            guard exists else { return false }
            return try addLink(directory, objectID, entry.name, index: key.offset, reference: true)
        }

        // MARK: Inode references

        /// `add_inode_ref`: each logged name of the inode in the directory, conflicting names
        /// unlinked first; then the stored names the log does not hold are unlinked and the
        /// logged item replaces the stored one.
        private mutating func addInodeRef(_ key: Key, _ bytes: [UInt8]) throws {
            let (objectID, directory) = (key.objectID, key.offset)
            guard try inodeExists(directory) else { return }
            guard try inodeExists(objectID) else {
                throw FWError.corrupt("btrfs log replay: inode \(objectID) of a logged reference does not exist")
            }
            let logged = try InodeRef.all(bytes)
            var searchDone = false
            for ref in logged {
                if try inDirectory(directory, objectID, ref) { continue }
                if !searchDone {
                    if objectID == directory { return }
                    searchDone = try unlinkConflicts(directory, objectID, ref, logged: logged)
                }
                if let stored = try store.item(key), try InodeRef.all(stored).contains(where: { $0.name == ref.name }) {
                    try unlink(directory, objectID, ref.name)
                }
                // add_link: another inode's entry with the name goes (that inode is in the log,
                // so its count is fixed with the others').
                let itemKey = BtrfsReader.nameKey(directory, ref.name)
                if let other = try storedEntry(itemKey, named: ref.name) {
                    try unlink(directory, try target(other), ref.name)
                }
                try addLink(directory, objectID, ref.name, index: ref.index, reference: false)
            }
            // unlink_old_inode_refs
            if let stored = try store.item(key) {
                for old in try InodeRef.all(stored) where !logged.contains(where: { $0.name == old.name }) {
                    try unlink(directory, objectID, old.name)
                }
            }
            store.set(key, bytes)
        }

        /// `inode_in_dir`: the directory's DIR_INDEX and DIR_ITEM entries for the name both lead
        /// to the inode.
        private func inDirectory(_ directory: UInt64, _ objectID: UInt64, _ ref: InodeRef) throws -> Bool {
            guard let index = try storedEntry(Key(directory, .dirIndex, ref.index), named: ref.name),
                  index.location.objectID == objectID,
                  let item = try storedEntry(BtrfsReader.nameKey(directory, ref.name), named: ref.name) else { return false }
            return item.location.objectID == objectID
        }

        /// `__add_inode_ref`: the inode's stored names in the directory that the log does not
        /// hold are unlinked, then whatever holds the logged index or name there. True when the
        /// inode had stored names there (the search need not be repeated).
        private mutating func unlinkConflicts(_ directory: UInt64, _ objectID: UInt64, _ ref: InodeRef, logged: [InodeRef]) throws -> Bool {
            guard try store.items(objectID, ItemType.inodeExtref.rawValue).isEmpty else {
                throw FWError.unsupported("extended inode references (inode \(objectID)) are not replayed")
            }
            var found = false
            let refKey = Key(objectID, .inodeRef, directory)
            while let stored = try store.item(refKey) {
                found = true
                guard let victim = try InodeRef.all(stored).first(where: { old in !logged.contains { $0.name == old.name } }) else { break }
                try unlink(directory, objectID, victim.name)
            }
            for key in [Key(directory, .dirIndex, ref.index), BtrfsReader.nameKey(directory, ref.name)] {
                if let entry = try storedEntry(key, named: ref.name) {
                    let other = try target(entry)
                    fixups.insert(other)
                    try unlink(directory, other, ref.name)
                }
            }
            return found
        }

        // MARK: File extents

        /// `replay_one_extent`: the range the logged extent covers is dropped from the file and
        /// the extent put in (a hole not, with NO_HOLES); inline extents are copied.
        private func replayExtent(_ key: Key, _ bytes: [UInt8]) throws {
            let type = try Self.u8(bytes, 20)
            let end: UInt64
            switch type {
            case 1, 2: end = key.offset &+ (try Self.u64(bytes, 45))
            case 0: end = Self.align(key.offset &+ (try Self.u64(bytes, 8)), sectorSize)
            default: return
            }
            guard end >= key.offset else { throw FWError.corrupt("btrfs logged extent \(key) ends past 2^64") }
            guard try inodeExists(key.objectID) else {
                throw FWError.corrupt("btrfs log replay: inode \(key.objectID) of a logged extent does not exist")
            }
            if type != 0, let stored = try store.item(key), stored.prefix(Self.extentItemSize) == bytes.prefix(Self.extentItemSize) { return }
            try dropExtents(key.objectID, from: key.offset, to: end)
            if type != 0 {
                guard bytes.count >= Self.extentItemSize else { throw FWError.corrupt("btrfs logged extent \(key) is \(bytes.count) bytes") }
                if try Self.u64(bytes, 21) == 0, noHoles { return }
                store.set(key, Array(bytes.prefix(Self.extentItemSize)))
            } else {
                store.set(key, bytes)
            }
        }

        /// `btrfs_drop_extents`: the file's extents lose what lies in `start..<end`; an extent
        /// reaching past either end keeps that part (its offset into the data moved).
        private func dropExtents(_ objectID: UInt64, from start: UInt64, to end: UInt64) throws {
            guard start < end else { return }
            for (key, bytes) in try store.items(from: Key(objectID, .extentData, 0), to: Key(objectID, .extentData, end - 1)) {
                let inline = try Self.u8(bytes, 20) == 0
                let extentEnd = inline ? Self.align(key.offset &+ (try Self.u64(bytes, 8)), sectorSize) : key.offset &+ (try Self.u64(bytes, 45))
                guard extentEnd > start else { continue }
                if inline, key.offset < start || extentEnd > end {
                    throw FWError.unsupported("btrfs log replay would cut the inline extent of inode \(objectID)")
                }
                if key.offset < start {
                    var head = bytes
                    try head.setInteger(start - key.offset, at: 45)
                    store.set(key, head)
                } else {
                    store.delete(key)
                }
                if extentEnd > end {
                    var tail = bytes
                    let (offset, overflow) = try Self.u64(bytes, 37).addingReportingOverflow(end - key.offset)
                    guard !overflow else { throw FWError.corrupt("btrfs extent \(key): data offset past 2^64") }
                    try tail.setInteger(offset, at: 37)
                    try tail.setInteger(extentEnd - end, at: 45)
                    store.set(Key(objectID, .extentData, end), tail)
                }
            }
        }

        // MARK: Link counts

        /// `fixup_inode_link_counts`: each replayed inode's link count is the number of its
        /// names; a directory left with none loses its entries (whose inodes are checked in turn).
        private mutating func fixLinkCounts() throws {
            while let objectID = fixups.max() {
                fixups.remove(objectID)
                let key = Key(objectID, .inodeItem, 0)
                guard var item = try store.item(key) else {
                    throw FWError.corrupt("btrfs log replay: inode \(objectID) to recount does not exist")
                }
                var links = 0
                for (_, bytes) in try store.items(objectID, ItemType.inodeRef.rawValue) { links += try InodeRef.all(bytes).count }
                for (_, bytes) in try store.items(objectID, ItemType.inodeExtref.rawValue) { links += try Self.extrefCount(bytes) }
                if try Self.u32(item, 40) != UInt32(clamping: links) {
                    try item.setInteger(UInt32(clamping: links), at: 40)
                    store.set(key, item)
                }
                if links == 0, Self.isDirectory(try Self.u32(item, 52)) { try replayDirectoryDeletes(objectID, all: true) }
            }
        }

        /// The names in an INODE_EXTREF item (`struct btrfs_inode_extref`: 0 `parent`, 8 `index`,
        /// 16 `name_len`, the name).
        static func extrefCount(_ bytes: [UInt8]) throws -> Int {
            let c = ByteCursor(bytes, context: "btrfs inode extref")
            var position = 0, count = 0
            while position < c.count {
                position += 18 + Int(try c.u16le(at: position + 16))
                count += 1
            }
            return count
        }

        // MARK: Fields

        static func u8(_ bytes: [UInt8], _ at: Int) throws -> UInt8 { try ByteCursor(bytes, context: "btrfs item").u8(at: at) }
        static func u32(_ bytes: [UInt8], _ at: Int) throws -> UInt32 { try ByteCursor(bytes, context: "btrfs item").u32le(at: at) }
        static func u64(_ bytes: [UInt8], _ at: Int) throws -> UInt64 { try ByteCursor(bytes, context: "btrfs item").u64le(at: at) }
        static func align(_ value: UInt64, _ to: UInt64) -> UInt64 {
            let (sum, overflow) = value.addingReportingOverflow(to - 1)
            return overflow ? UInt64.max & ~(to - 1) : sum & ~(to - 1)
        }
        static func isDirectory(_ mode: UInt32) -> Bool { mode & 0o170000 == 0o040000 }
        static func isRegular(_ mode: UInt32) -> Bool { mode & 0o170000 == 0o100000 }

        /// `BTRFS_FT_*` of a mode.
        static func fileType(_ mode: UInt32) -> UInt8 {
            switch mode & 0o170000 {
            case 0o100000: 1
            case 0o040000: 2
            case 0o020000: 3
            case 0o060000: 4
            case 0o010000: 5
            case 0o140000: 6
            case 0o120000: 7
            default: 0
            }
        }
    }
}
