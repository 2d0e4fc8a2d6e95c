import BoltDB
import DiskImage
import Foundation
import TestSupport
import Testing

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
        // Every name `ctr images ls` listed (column REF), in bbolt's byte order.
        let listed = try String(contentsOfFile: facts + "/images.txt", encoding: .utf8).split(separator: "\n").dropFirst()
            .compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(try images.buckets().map(\.name) == listed.sorted())
        #expect(listed.contains("docker.io/example/job:2.0") && listed.contains("docker.io/example/web:1.0"))
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
