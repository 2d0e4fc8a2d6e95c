import BoltDB
import DiskImage
import Foundation
import TestSupport
import Testing

/// A tiny bbolt file written by hand (little-endian, 4096-byte pages) for the hostile cases.
struct BoltImage {
    var pageSize = 4096
    var pages: [[UInt8]]

    init(pageCount: Int, pageSize: Int = 4096) {
        self.pageSize = pageSize
        pages = Array(repeating: [UInt8](repeating: 0, count: pageSize), count: pageCount)
    }

    mutating func put(_ page: Int, _ at: Int, _ value: UInt64, _ width: Int) {
        for i in 0..<width { pages[page][at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    /// Meta page `index` with the root bucket at `root`, high-water mark `count`.
    mutating func meta(_ index: Int, root: UInt64, count: UInt64, txid: UInt64, checksum: Bool = true) {
        put(index, 0, UInt64(index), 8); put(index, 8, 0x04, 2)
        let m = 16
        put(index, m, UInt64(Bolt.magic), 4); put(index, m + 4, 2, 4); put(index, m + 8, UInt64(pageSize), 4)
        put(index, m + 16, root, 8); put(index, m + 32, 0, 8); put(index, m + 40, count, 8); put(index, m + 48, txid, 8)
        let sum = Bolt.fnv1a64(pages[index][m..<(m + 56)])
        put(index, m + 56, checksum ? sum : sum ^ 1, 8)
    }

    /// A leaf page with plain key/values.
    mutating func leaf(_ id: Int, _ items: [(String, String)]) {
        put(id, 0, UInt64(id), 8); put(id, 8, 0x02, 2); put(id, 10, UInt64(items.count), 2)
        var data = 16 + 16 * items.count
        for (i, (k, v)) in items.enumerated() {
            let e = 16 + 16 * i
            put(id, e + 4, UInt64(data - e), 4); put(id, e + 8, UInt64(k.utf8.count), 4); put(id, e + 12, UInt64(v.utf8.count), 4)
            for b in Array(k.utf8) + Array(v.utf8) { pages[id][data] = b; data += 1 }
        }
    }

    /// A branch page whose children are `children`.
    mutating func branch(_ id: Int, _ children: [UInt64]) {
        put(id, 0, UInt64(id), 8); put(id, 8, 0x01, 2); put(id, 10, UInt64(children.count), 2)
        for (i, c) in children.enumerated() { put(id, 16 + 16 * i + 8, c, 8) }
    }

    var bytes: [UInt8] { pages.flatMap { $0 } }
}

@Suite struct BoltTests {
    @Test func fnv1a64MatchesGo() {
        // Go: fnv.New64a() of "hello" = 0xa430d84680aabd0b
        #expect(Bolt.fnv1a64(ArraySlice("hello".utf8)) == 0xa430_d846_80aa_bd0b)
    }

    @Test func handWrittenFile() throws {
        var f = BoltImage(pageCount: 3)
        f.meta(0, root: 2, count: 3, txid: 4)
        f.meta(1, root: 2, count: 3, txid: 5)
        f.leaf(2, [("a", "1"), ("b", "22")])
        let db = try Bolt.Database(source: MemorySource(f.bytes, name: "x.img"), name: "/x.db")
        #expect(db.meta.txid == 5 && db.meta.page == 1 && db.meta.pageSize == 4096)
        #expect(try db.root.values() == ["a": Array("1".utf8), "b": Array("22".utf8)])
    }

    @Test func badChecksumFallsBackToTheOtherMeta() throws {
        var f = BoltImage(pageCount: 3)
        f.meta(0, root: 2, count: 3, txid: 4)
        f.meta(1, root: 2, count: 3, txid: 5, checksum: false)
        f.leaf(2, [("k", "v")])
        let db = try Bolt.Database(source: MemorySource(f.bytes, name: "x.img"), name: "/x.db")
        #expect(db.meta.txid == 4 && db.meta.page == 0)
    }

    @Test func bothMetasInvalidNamesTheFile() throws {
        var f = BoltImage(pageCount: 3)
        f.meta(0, root: 2, count: 3, txid: 4, checksum: false)
        f.meta(1, root: 2, count: 3, txid: 5, checksum: false)
        #expect { try Bolt.Database(source: MemorySource(f.bytes, name: "x.img"), name: "/var/lib/containerd/meta.db") } throws: { e in
            (e as? FWError)?.description.contains("/var/lib/containerd/meta.db") == true && (e as? FWError)?.code == .corrupt
        }
    }

    @Test func pageSizeIsReadNotAssumed() throws {
        var f = BoltImage(pageCount: 3, pageSize: 16384)
        f.meta(0, root: 2, count: 3, txid: 1, checksum: false)   // page 0 torn: page 1 is found by probing
        f.meta(1, root: 2, count: 3, txid: 2)
        f.leaf(2, [("k", "v")])
        let db = try Bolt.Database(source: MemorySource(f.bytes, name: "x.img"), name: "/x.db")
        #expect(db.meta.pageSize == 16384)
        #expect(try db.root.values()["k"] == Array("v".utf8))
    }

    @Test func loopsAndOutOfRangePagesAreErrors() throws {
        var f = BoltImage(pageCount: 4)
        f.meta(0, root: 2, count: 4, txid: 1)
        f.meta(1, root: 2, count: 4, txid: 2)
        f.branch(2, [3])
        f.branch(3, [2])                          // 2 -> 3 -> 2
        let db = try Bolt.Database(source: MemorySource(f.bytes, name: "x.img"), name: "/x.db")
        #expect { try db.root.entries() } throws: { ($0 as? FWError)?.message.contains("reached twice") == true }
        f.branch(3, [99])                         // outside the file
        let db2 = try Bolt.Database(source: MemorySource(f.bytes, name: "x.img"), name: "/x.db")
        #expect { try db2.root.entries() } throws: { ($0 as? FWError)?.message.contains("outside") == true }
        let truncated = Array(f.bytes.prefix(4096 * 3))
        f.branch(3, [2])
        let db3 = try Bolt.Database(source: MemorySource(truncated, name: "x.img"), name: "/x.db")
        #expect { try db3.root.entries() } throws: { ($0 as? FWError)?.description.contains("/x.db") == true }
    }

    /// The meta.db and metadata.db Debian's containerd wrote in the containerd-root recipe.
    @Test(.enabled(if: getuid() == 0)) func containerdFiles() throws {
        let disk = try TestImages.path("containerd-root.img")
        let facts = String(disk.dropLast(4)) + ".facts"
        let meta = try Bolt.Database(source: try FileSource(path: facts + "/meta.db"), name: "meta.db")
        #expect(try meta.root.buckets().map(\.name) == ["v1"])
        let v1 = try #require(try meta.root.bucket(named: "v1"))
        #expect(try v1.buckets().map(\.name) == ["moby"])
        let images = try #require(try v1.bucket(path: ["moby", "images"]))
        #expect(try images.buckets().map(\.name) == ["docker.io/example/job:2.0", "docker.io/example/web:1.0"])
        let snapshots = try #require(try Bolt.Database(source: try FileSource(path: facts + "/metadata.db"), name: "metadata.db")
            .root.bucket(path: ["v1", "snapshots"]))
        let keys = try snapshots.buckets()
        #expect(keys.count == 7)
        for (_, bucket) in keys {
            let values = try bucket.values()
            #expect(values["id"] != nil && values["kind"]?.count == 1)
        }
    }
}
