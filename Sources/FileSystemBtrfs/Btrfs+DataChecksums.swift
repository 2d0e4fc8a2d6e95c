import DiskImage

extension Btrfs {
    /// `BTRFS_CSUM_TREE_OBJECTID`: the tree of data checksums.
    static let checksumTreeID: UInt64 = 7
    /// `BTRFS_EXTENT_CSUM_OBJECTID` (-10): the objectid of every EXTENT_CSUM item.
    static let extentChecksumID: UInt64 = 0xFFFF_FFFF_FFFF_FFF6
    /// `BTRFS_EXTENT_CSUM_KEY`.
    static let extentChecksumType: UInt8 = 128
    /// `BTRFS_INODE_NODATASUM`: the inode's data has no checksums.
    static let inodeNoDataSum: UInt64 = 1

    /// One EXTENT_CSUM item: the checksums of consecutive sectors from logical `start` (the
    /// key's offset), `checksumSize` bytes each.
    struct DataChecksums {
        var start: UInt64
        var sums: [UInt8]
        var checksumSize: Int
        var sectorSize: UInt64

        /// The stored checksum of the sector at `logical`, nil when this item does not cover it.
        func checksum(of logical: UInt64) -> ArraySlice<UInt8>? {
            guard logical >= start else { return nil }
            let index = (logical - start) / sectorSize
            guard index < UInt64(sums.count / checksumSize) else { return nil }
            let at = Int(index) * checksumSize
            return sums[at..<(at + checksumSize)]
        }
    }

    /// Data checksum verification of one file's reads, sector by sector (`btrfs_check_data_csum`
    /// as the kernel runs it on each read), against the csum tree; mismatches are kept as
    /// warnings (the file's bytes are given as stored) after another mirror has been tried.
    final class DataVerifier {
        let reader: BtrfsReader
        let tree: TreeRoot
        private var item: DataChecksums?
        /// Logical addresses known to have no stored checksum.
        private var gap: Range<UInt64>?
        /// Mismatching sectors: "file offset X (logical Y)", the first `maximumListed` of them.
        private(set) var mismatches: [String] = []
        private(set) var mismatchCount = 0
        private var reported = Set<UInt64>()
        static let maximumListed = 8

        init(reader: BtrfsReader, tree: TreeRoot) {
            self.reader = reader
            self.tree = tree
        }

        var checksumSize: Int { reader.checksumType.size }

        /// The bytes of whole sectors from `logical` (sector-aligned), verified: mirror 0, else
        /// the first other mirror whose every sector matches, else mirror 0 with its mismatches
        /// recorded. `fileOffset`: the file offset of `logical` (of the extent when `compressed`,
        /// whose sectors hold compressed bytes), for the warning.
        func read(_ logical: UInt64, count: Int, fileOffset: Int64, compressed: Bool = false) throws -> [UInt8] {
            guard let first = try reader.trees.volume.bytes(logical, count: count) else {
                throw FWError.corrupt("btrfs data at logical \(logical) has no present copy")
            }
            let bad = try failing(first, at: logical)
            guard !bad.isEmpty else { return first }
            for mirror in 1..<4 {
                guard let other = try reader.trees.volume.bytes(logical, count: count, mirror: mirror) else { break }
                if try failing(other, at: logical).isEmpty { return other }
            }
            let sector = UInt64(reader.superBlock.sectorSize)
            for index in bad {
                let at = logical + UInt64(index) * sector
                // A sector read twice (two reads that split it) is reported once.
                guard reported.insert(at).inserted else { continue }
                mismatchCount += 1
                guard mismatches.count < Self.maximumListed else { continue }
                mismatches.append(compressed
                    ? "the compressed extent at file offset \(fileOffset) (its sector at logical \(at))"
                    : "the sector at file offset \(fileOffset + Int64(index) * Int64(sector)) (logical \(at))")
            }
            return first
        }

        /// The indexes of the sectors of `data` (at `logical`) whose stored checksum does not
        /// match; sectors with no stored checksum are not checked.
        private func failing(_ data: [UInt8], at logical: UInt64) throws -> [Int] {
            let sector = Int(reader.superBlock.sectorSize)
            var bad: [Int] = []
            try data.withUnsafeBytes { raw in
                for index in 0..<(raw.count / sector) {
                    let at = logical + UInt64(index * sector)
                    guard let stored = try checksum(of: at) else { continue }
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[(index * sector)..<((index + 1) * sector)])
                    if !reader.checksumType.matches(stored, bytes) { bad.append(index) }
                }
            }
            return bad
        }

        /// The stored checksum of the sector at `logical`: from the item read last, else the
        /// EXTENT_CSUM item covering it (the last one starting at or before it; an item spans at
        /// most one leaf of checksums, which bounds the search). A range found to have none is
        /// remembered, so a file without checksums costs one search per gap.
        private func checksum(of logical: UInt64) throws -> ArraySlice<UInt8>? {
            if let sum = item?.checksum(of: logical) { return sum }
            if let gap, gap.contains(logical) { return nil }
            let sector = UInt64(reader.superBlock.sectorSize)
            let span = UInt64(Int(reader.superBlock.nodeSize) / checksumSize) * sector
            let from = logical >= span ? logical - span : 0
            let (to, overflow) = logical.addingReportingOverflow(span)
            var found: DataChecksums?
            var next = overflow ? UInt64.max : to
            try reader.trees.forEach(in: tree, from: Key(Btrfs.extentChecksumID, Btrfs.extentChecksumType, from),
                                     to: Key(Btrfs.extentChecksumID, Btrfs.extentChecksumType, next)) { key, c in
                if key.offset > logical {
                    next = key.offset
                    return false
                }
                guard c.count % checksumSize == 0 else {
                    throw FWError.corrupt("btrfs csum item at logical \(key.offset): \(c.count) bytes, not a multiple of \(checksumSize)")
                }
                found = DataChecksums(start: key.offset, sums: c.bytes, checksumSize: checksumSize, sectorSize: sector)
                return true
            }
            if let found, let sum = found.checksum(of: logical) {
                item = found
                return sum
            }
            gap = logical..<max(next, logical + 1)
            return nil
        }
    }
}

extension BtrfsReader {
    /// The csum tree's root, from the root tree's ROOT_ITEM 7 (nil when there is none).
    static func checksumTree(_ trees: Btrfs.TreeReader, rootTree: Btrfs.TreeRoot) throws -> Btrfs.TreeRoot? {
        guard let (_, item) = try trees.first(in: rootTree, objectID: Btrfs.checksumTreeID, type: .rootItem) else { return nil }
        let root = try Btrfs.RootItem(item)
        guard root.level <= Btrfs.maximumLevel else {
            throw FWError.corrupt("btrfs csum tree root level \(root.level) over \(Btrfs.maximumLevel)")
        }
        return Btrfs.TreeRoot(id: Btrfs.checksumTreeID, byteNumber: root.byteNumber, level: root.level)
    }
}
