/// A tiny bbolt file written by hand (little-endian, 4096-byte pages) for the hostile cases of the
/// bbolt reader and the stores that use it; written from etcd-io/bbolt's layout, independently of
/// `Sources/BoltDB`.
public struct BoltImage {
    public var pageSize = 4096
    public var pages: [[UInt8]]

    public init(pageCount: Int, pageSize: Int = 4096) {
        self.pageSize = pageSize
        pages = Array(repeating: [UInt8](repeating: 0, count: pageSize), count: pageCount)
    }

    public mutating func put(_ page: Int, _ at: Int, _ value: UInt64, _ width: Int) {
        for i in 0..<width { pages[page][at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    /// Meta page `index` with the root bucket at `root`, high-water mark `count`.
    public mutating func meta(_ index: Int, root: UInt64, count: UInt64, txid: UInt64, checksum: Bool = true) {
        put(index, 0, UInt64(index), 8); put(index, 8, 0x04, 2)
        let m = 16
        put(index, m, 0xED0C_DAED, 4); put(index, m + 4, 2, 4); put(index, m + 8, UInt64(pageSize), 4)
        put(index, m + 16, root, 8); put(index, m + 32, 0, 8); put(index, m + 40, count, 8); put(index, m + 48, txid, 8)
        let sum = Self.fnv1a64(pages[index][m..<(m + 56)])
        put(index, m + 56, checksum ? sum : sum ^ 1, 8)
    }

    /// A leaf page with plain key/values.
    public mutating func leaf(_ id: Int, _ items: [(String, String)]) {
        put(id, 0, UInt64(id), 8); put(id, 8, 0x02, 2); put(id, 10, UInt64(items.count), 2)
        var data = 16 + 16 * items.count
        for (i, (k, v)) in items.enumerated() {
            let e = 16 + 16 * i
            put(id, e + 4, UInt64(data - e), 4); put(id, e + 8, UInt64(k.utf8.count), 4); put(id, e + 12, UInt64(v.utf8.count), 4)
            for b in Array(k.utf8) + Array(v.utf8) { pages[id][data] = b; data += 1 }
        }
    }

    /// A branch page whose children are `children`.
    public mutating func branch(_ id: Int, _ children: [UInt64]) {
        put(id, 0, UInt64(id), 8); put(id, 8, 0x01, 2); put(id, 10, UInt64(children.count), 2)
        for (i, c) in children.enumerated() { put(id, 16 + 16 * i + 8, c, 8) }
    }

    public var bytes: [UInt8] { pages.flatMap { $0 } }

    /// FNV-1a 64 (Go's hash/fnv New64a), the meta checksum.
    public static func fnv1a64(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { hash = (hash ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return hash
    }
}
