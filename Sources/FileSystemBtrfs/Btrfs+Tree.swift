import DiskImage

extension Btrfs {
    /// Where a tree starts: its root block's logical address and level.
    struct TreeRoot: Sendable, Equatable {
        var id: UInt64
        var byteNumber: UInt64
        var level: UInt8
    }

    /// One decoded, checked tree block: a leaf's items (key, data range) or a node's children
    /// (key, child address).
    struct Node {
        var header: Header
        var bytes: [UInt8]
        var keys: [Key]
        /// Leaves: each item's data as a range of `bytes`.
        var ranges: [Range<Int>]
        /// Nodes: each key pointer's child block.
        var children: [UInt64]

        func item(_ i: Int) -> ByteCursor {
            ByteCursor(Array(bytes[ranges[i]]), context: "btrfs item \(keys[i]) in the block at \(header.byteNumber)")
        }
    }

    /// Reads tree blocks through the chunk map, checks them (checksum, bytenr, fsid, level,
    /// item bounds, key order) and keeps the most recent ones.
    final class TreeReader {
        let volume: Volume
        let superBlock: SuperBlock
        let checksumType: ChecksumType
        let verifyChecksums: Bool
        private var cache: [UInt64: Node] = [:]
        private var cacheOrder: [UInt64] = []
        static let cacheSize = 512
        /// Tree blocks one search may read (a search visits each block at most once, since the
        /// key ranges of siblings do not overlap; this bounds a search over a huge directory).
        static let maximumBlocksPerSearch = 1 << 21

        init(volume: Volume, superBlock: SuperBlock, checksumType: ChecksumType, verifyChecksums: Bool) {
            self.verifyChecksums = verifyChecksums
            self.volume = volume
            self.superBlock = superBlock
            self.checksumType = checksumType
        }

        /// The checked block at `logical`, expected at `level`; a copy whose checksum or header
        /// does not match is tried from the next present mirror.
        func node(at logical: UInt64, level: UInt8) throws -> Node {
            if let cached = cache[logical] {
                guard cached.header.level == level else {
                    throw FWError.corrupt("btrfs tree block at \(logical) has level \(cached.header.level), expected \(level)")
                }
                return cached
            }
            let size = Int(superBlock.nodeSize)
            var firstProblem: FWError?
            for mirror in 0..<4 {
                guard let bytes = try volume.bytes(logical, count: size, mirror: mirror) else { break }
                do {
                    let node = try decode(bytes, at: logical, level: level)
                    remember(node, at: logical)
                    return node
                } catch let error as FWError {
                    if firstProblem == nil { firstProblem = error }
                }
            }
            throw firstProblem ?? FWError.corrupt("btrfs tree block at \(logical) has no present copy")
        }

        private func remember(_ node: Node, at logical: UInt64) {
            if cacheOrder.count >= Self.cacheSize {
                cache[cacheOrder.removeFirst()] = nil
            }
            cache[logical] = node
            cacheOrder.append(logical)
        }

        private func decode(_ bytes: [UInt8], at logical: UInt64, level: UInt8) throws -> Node {
            guard !verifyChecksums || checksumType.verify(bytes) else {
                throw FWError.corrupt("btrfs tree block at \(logical): \(checksumType.name) checksum mismatch")
            }
            let c = ByteCursor(bytes, context: "btrfs tree block at \(logical)")
            let header = try Header(c)
            guard header.byteNumber == logical else {
                throw FWError.corrupt("btrfs tree block at \(logical) says it is at \(header.byteNumber)")
            }
            guard header.fsid == superBlock.treeBlockFSID else {
                throw FWError.corrupt("btrfs tree block at \(logical) belongs to another filesystem (fsid \(uuidString(header.fsid)))")
            }
            guard header.level == level else {
                throw FWError.corrupt("btrfs tree block at \(logical) has level \(header.level), expected \(level)")
            }
            let count = Int(header.itemCount)
            let space = bytes.count - headerSize
            var node = Node(header: header, bytes: bytes, keys: [], ranges: [], children: [])
            if level == 0 {
                guard count <= space / itemSize else {
                    throw FWError.corrupt("btrfs leaf at \(logical) claims \(count) items, more than fit")
                }
                let itemsEnd = headerSize + count * itemSize
                for i in 0..<count {
                    let at = headerSize + i * itemSize
                    let key = try Key(c, at: at)
                    let offset = Int(try c.u32le(at: at + 17))
                    let size = Int(try c.u32le(at: at + 21))
                    let start = headerSize + offset
                    guard offset <= space, size <= space - offset, start >= itemsEnd else {
                        throw FWError.corrupt("btrfs leaf at \(logical): item \(i) data \(offset)+\(size) is outside the leaf")
                    }
                    node.keys.append(key)
                    node.ranges.append(start..<(start + size))
                }
            } else {
                guard count > 0, count <= space / keyPointerSize else {
                    throw FWError.corrupt("btrfs node at \(logical) claims \(count) key pointers")
                }
                for i in 0..<count {
                    let at = headerSize + i * keyPointerSize
                    node.keys.append(try Key(c, at: at))
                    node.children.append(try c.u64le(at: at + 17))
                }
            }
            for i in node.keys.indices.dropFirst() where !(node.keys[i - 1] < node.keys[i]) {
                throw FWError.corrupt("btrfs tree block at \(logical): keys out of order at item \(i)")
            }
            return node
        }

        /// What log replay changed in a tree, by tree id: items written (bytes) and deleted
        /// (nil), sorted by key. Set once, after the replay, which reads the trees without them.
        var overlays: [UInt64: [(key: Key, bytes: [UInt8]?)]] = [:]

        /// Calls `body` with each item whose key is in `low...high`, in key order, until it
        /// returns false: the tree's items as replay left them (`overlays`).
        func forEach(in tree: TreeRoot, from low: Key, to high: Key,
                     _ body: (Key, ByteCursor) throws -> Bool) throws {
            guard let overlay = overlays[tree.id] else { return try forEachStored(in: tree, from: low, to: high, body) }
            // The replayed items in range, merged into the stored ones by key; a replayed item
            // replaces the stored one with its key, a deleted one (nil) hides it.
            var next = Self.firstIndex(atOrAfter: low, in: overlay)
            var stopped = false
            func emit(_ key: Key, _ item: ByteCursor) throws -> Bool {
                stopped = try !body(key, item)
                return !stopped
            }
            func replayed(_ index: Int) throws -> Bool {
                guard let bytes = overlay[index].bytes else { return true }
                return try emit(overlay[index].key, ByteCursor(bytes, context: "btrfs replayed item \(overlay[index].key)"))
            }
            /// The replayed items before `key` (to the end of the range when nil).
            func replayed(before key: Key?) throws -> Bool {
                while next < overlay.count, overlay[next].key <= high, key.map({ overlay[next].key < $0 }) ?? true {
                    defer { next += 1 }
                    guard try replayed(next) else { return false }
                }
                return true
            }
            try forEachStored(in: tree, from: low, to: high) { key, item in
                guard try replayed(before: key) else { return false }
                guard next < overlay.count, overlay[next].key == key else { return try emit(key, item) }
                defer { next += 1 }
                return try replayed(next)
            }
            if !stopped { _ = try replayed(before: nil) }
        }

        /// The index of the first item of `overlay` (sorted) whose key is `key` or after it.
        private static func firstIndex(atOrAfter key: Key, in overlay: [(key: Key, bytes: [UInt8]?)]) -> Int {
            var low = 0, high = overlay.count
            while low < high {
                let middle = (low + high) / 2
                if overlay[middle].key < key { low = middle + 1 } else { high = middle }
            }
            return low
        }

        /// `forEach` over the tree as stored (no replayed items).
        func forEachStored(in tree: TreeRoot, from low: Key, to high: Key,
                           _ body: (Key, ByteCursor) throws -> Bool) throws {
            guard tree.level <= maximumLevel else {
                throw FWError.corrupt("btrfs tree \(tree.id) root has level \(tree.level), over \(maximumLevel)")
            }
            var budget = Self.maximumBlocksPerSearch
            _ = try visit(tree.byteNumber, level: tree.level, bounds: (nil, nil), low, high, &budget, body)
        }

        /// Items with exactly this objectid and type, from offset `from` on, in offset order, at
        /// most `limit` of them.
        func items(in tree: TreeRoot, objectID: UInt64, type: ItemType, from: UInt64 = 0, limit: Int = Int.max) throws -> [(Key, ByteCursor)] {
            var result: [(Key, ByteCursor)] = []
            try forEach(in: tree, from: Key(objectID, type, from), to: Key(objectID, type, UInt64.max)) { key, item in
                result.append((key, item))
                return result.count < limit
            }
            return result
        }

        /// The first item with this objectid and type (any offset).
        func first(in tree: TreeRoot, objectID: UInt64, type: ItemType) throws -> (Key, ByteCursor)? {
            try items(in: tree, objectID: objectID, type: type, limit: 1).first
        }

        /// `bounds`: the key range the parent's pointer gives this block (lower inclusive, upper
        /// exclusive); every key in the block must be inside it.
        private func visit(_ logical: UInt64, level: UInt8, bounds: (Key?, Key?), _ low: Key, _ high: Key,
                           _ budget: inout Int, _ body: (Key, ByteCursor) throws -> Bool) throws -> Bool {
            budget -= 1
            guard budget >= 0 else {
                throw FWError(.limitExceeded, "btrfs search read more than \(Self.maximumBlocksPerSearch) tree blocks")
            }
            let node = try node(at: logical, level: level)
            if let first = node.keys.first, let lower = bounds.0, first < lower {
                throw FWError.corrupt("btrfs tree block at \(logical) starts with key \(first), before its parent's \(lower)")
            }
            if let last = node.keys.last, let upper = bounds.1, !(last < upper) {
                throw FWError.corrupt("btrfs tree block at \(logical) ends with key \(last), not before its parent's next key \(upper)")
            }
            if level == 0 {
                for i in node.keys.indices where node.keys[i] >= low {
                    if node.keys[i] > high { return false }
                    if try !body(node.keys[i], node.item(i)) { return false }
                }
                return true
            }
            for i in node.keys.indices {
                let next = i + 1 < node.keys.count ? node.keys[i + 1] : bounds.1
                if let next, next <= low { continue }
                if node.keys[i] > high { return false }
                guard try visit(node.children[i], level: level - 1, bounds: (node.keys[i], next), low, high, &budget, body) else {
                    return false
                }
            }
            return true
        }
    }
}
