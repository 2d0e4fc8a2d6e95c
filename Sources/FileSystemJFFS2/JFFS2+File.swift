import DiskImage
import FileSystems

/// A JFFS2 file's contents as Linux's fragment tree gives them (fs/jffs2/nodelist.c): the data
/// nodes applied in version order, each covering its range over older ones, then cut to the
/// file size; ranges no node covers and ZERO nodes read as zeros. Holds the fragment list (node
/// positions) and one decompressed node at a time.
final class JFFS2File: FileContents {
    /// `start..<end` of the file comes from `node` (nil: zeros) at `start - node.offset`.
    struct Fragment {
        var start: UInt64
        var end: UInt64
        var node: JFFS2.NodeRecord?
    }

    let size: UInt64
    private let reader: JFFS2Reader
    private let fragments: [Fragment]
    private var position: UInt64 = 0
    /// Index of the fragment at or after `position`.
    private var fragmentIndex = 0
    private var cachedPosition: UInt64?
    private var cachedData: [UInt8] = []

    init(reader: JFFS2Reader, ino: UInt32, record: JFFS2.InodeRecord, size: UInt64) throws {
        self.reader = reader
        self.size = size
        let ordered = record.dataNodes.sorted { ($0.version, $0.position) < ($1.version, $1.position) }
        var list: [Fragment] = []
        for node in ordered {
            let start = UInt64(node.offset)
            let end = start + UInt64(node.dataSize)
            let zero = node.compression == JFFS2.Compression.zero.rawValue
            Self.insert(Fragment(start: start, end: end, node: zero ? nil : node), into: &list)
        }
        // Cut to the newest size (jffs2_truncate_fragtree).
        while let last = list.last, last.start >= size { list.removeLast() }
        if let last = list.indices.last, list[last].end > size { list[last].end = size }
        fragments = list
    }

    /// Puts `new` over the fragments it overlaps, keeping the list sorted and disjoint.
    static func insert(_ new: Fragment, into list: inout [Fragment]) {
        guard new.end > new.start else { return }
        // First fragment ending after new.start.
        var low = 0, high = list.count
        while low < high {
            let mid = (low + high) / 2
            if list[mid].end <= new.start { low = mid + 1 } else { high = mid }
        }
        var replaced: [Fragment] = []
        var last = low
        while last < list.count, list[last].start < new.end {
            let old = list[last]
            if old.start < new.start { replaced.append(Fragment(start: old.start, end: new.start, node: old.node)) }
            if old.end > new.end { replaced.append(Fragment(start: new.end, end: old.end, node: old.node)) }
            last += 1
        }
        let keptBefore = replaced.filter { $0.start < new.start }
        let keptAfter = replaced.filter { $0.start >= new.end }
        list.replaceSubrange(low..<last, with: keptBefore + [new] + keptAfter)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard position < size, buffer.count > 0 else { return 0 }
        while fragmentIndex < fragments.count, fragments[fragmentIndex].end <= position { fragmentIndex += 1 }
        let want = Int(min(UInt64(buffer.count), size - position))
        let count: Int
        if fragmentIndex < fragments.count, fragments[fragmentIndex].start <= position {
            let fragment = fragments[fragmentIndex]
            count = Int(min(UInt64(want), fragment.end - position))
            if let node = fragment.node {
                if cachedPosition != node.position {
                    cachedData = try reader.nodeData(node)
                    cachedPosition = node.position
                }
                let from = Int(position - UInt64(node.offset))
                guard from + count <= cachedData.count else {
                    throw FWError.corrupt("jffs2 node at \(node.position) holds \(cachedData.count) bytes, fewer than its range").within(reader.place)
                }
                cachedData.withUnsafeBytes { src in
                    buffer.baseAddress!.copyMemory(from: src.baseAddress! + from, byteCount: count)
                }
            } else {
                buffer.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: count)
            }
        } else {
            // A hole up to the next fragment or the end.
            let next = fragmentIndex < fragments.count ? fragments[fragmentIndex].start : size
            count = Int(min(UInt64(want), next - position))
            buffer.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        }
        position += UInt64(count)
        return count
    }
}
