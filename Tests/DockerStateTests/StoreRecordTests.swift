import BoltDB
import DiskImage
@testable import DockerState
import FileSystems
import Foundation
import Testing
import TestSupport

/// Records of the containerd and Podman stores as read, hostile ones included (issue 22).
@Suite("Container store records: chains, malformed records, ids")
struct StoreRecordTests {
    /// A containerd root in memory whose overlayfs snapshots `k0 ... k(n-1)` each name the next
    /// as parent (`loopTo` makes the last one name that key instead).
    static func containerdChain(_ n: Int, loopTo: Int? = nil) -> (ContainerdStore, ContainerdStore.Namespace) {
        let fs = MemoryFileSystem()
        let dir = DataRoot(reader: fs, inode: fs.rootInode, path: "/c", engine: "containerd", role: .helper)
        let store = ContainerdStore(dir: dir)
        var ns = ContainerdStore.Namespace(name: "moby")
        var keys: [String: ContainerdStore.Snapshot] = [:]
        var backends: [String: ContainerdStore.Backend] = [:]
        for i in 0..<n {
            let parent = i + 1 < n ? "k\(i + 1)" : loopTo.map { "k\($0)" }
            keys["k\(i)"] = ContainerdStore.Snapshot(key: "k\(i)", name: "moby/\(i)/k\(i)", parent: parent)
            backends["moby/\(i)/k\(i)"] = ContainerdStore.Backend(key: "moby/\(i)/k\(i)", id: UInt64(i + 1), kind: "Committed")
            fs.addDirectory("io.containerd.snapshotter.v1.overlayfs/snapshots/\(i + 1)/fs")
        }
        ns.snapshots["overlayfs"] = keys
        store.namespaces = [ns]
        store.backends["overlayfs"] = backends
        return (store, ns)
    }

    @Test("An acyclic snapshot chain longer than 256 is 'longer than', a loop is a loop; 256 is fine")
    func containerdChainLength() {
        let (long, ns) = Self.containerdChain(300)
        let chain = long.chain("k0", namespace: ns, snapshotter: "overlayfs")
        #expect(chain.problem?.contains("longer than 256 snapshots") == true, "\(chain.problem ?? "")")
        #expect(chain.keys.count == 256)
        let (exact, ns2) = Self.containerdChain(256)
        #expect(exact.chain("k0", namespace: ns2, snapshotter: "overlayfs").problem == nil)
        let (loop, ns3) = Self.containerdChain(5, loopTo: 2)
        let looped = loop.chain("k0", namespace: ns3, snapshotter: "overlayfs")
        #expect(looped.problem == "the snapshot chain of k0 loops at k2")
        let (own, ns4) = Self.containerdChain(1, loopTo: 0)
        #expect(own.chain("k0", namespace: ns4, snapshotter: "overlayfs").problem == "the snapshot chain of k0 loops at k0")
    }

    @Test("Podman: a layer chain longer than 256 is 'longer than', a loop is a loop")
    func podmanChainLength() throws {
        let fs = MemoryFileSystem()
        let root = DataRoot(reader: fs, inode: fs.rootInode, path: "/p", engine: "podman", role: .podman)
        var layers: [String: PodmanJSON.Layer] = [:]
        for i in 0..<300 {
            let parent = i + 1 < 300 ? "\"l\(i + 1)\"" : "null"
            layers["l\(i)"] = try JSONDecoder().decode(PodmanJSON.Layer.self, from: Data("{\"id\": \"l\(i)\", \"parent\": \(parent)}".utf8))
        }
        let (chain, problem) = root.podmanChain("l0", layers)
        #expect(problem?.contains("longer than 256 layers") == true && chain.count == 256, "\(problem ?? "")")
        layers["l299"]?.parent = "l290"
        #expect(root.podmanChain("l280", layers).1 == "the layer chain of l280 loops at l290")
    }

    /// Go's encoding/binary PutVarint.
    static func varint(_ n: Int64) -> [UInt8] {
        var u = UInt64(bitPattern: (n << 1) ^ (n >> 63))
        var out: [UInt8] = []
        while u >= 0x80 { out.append(UInt8(u & 0x7F) | 0x80); u >>= 7 }
        return out + [UInt8(u)]
    }

    @Test("bbolt sizes: negative, 2^63-1 and undecodable ones are problems with their place, and left out",
          arguments: [(Int64(-1), "-1 bytes is negative"), (Int64.max, "\(Int64.max) bytes is more than 1 PiB"), (Int64(351), "")])
    func sizes(value: Int64, message: String) {
        let (store, _) = Self.containerdChain(0)
        let size = store.size(["size": Self.varint(value)], at: "meta.db v1/moby/content/blob/sha256:x")
        #expect(size == (message.isEmpty ? value : nil))
        #expect(store.dir.problems == (message.isEmpty ? [] : ["/c/meta.db v1/moby/content/blob/sha256:x/size: \(message); ignored"]))
        let (other, _) = Self.containerdChain(0)
        #expect(other.size(["size": [0x80, 0x80]], at: "p") == nil)
        #expect(other.dir.problems == ["/c/p/size: 2-byte value does not decode; ignored"])
    }

    @Test("Ids are path components: one type, the same answer for every store")
    func ids() {
        for bad in ["", ".", "..", "../../x", "a/b", "x\0y", String(repeating: "a", count: 256)] {
            #expect(NamespacePath.Component(bad) == nil, "\(bad.debugDescription)")
        }
        for good in ["abc", "sha256:0a77", ".hidden", "a..b", String(repeating: "a", count: 255)] {
            #expect(NamespacePath.Component(good)?.text == good)
        }
    }

    @Test("A meta.db whose v1 is a value (no bucket), and values where records belong, are problems with their place")
    func valuesWhereRecordsBelong() throws {
        var file = BoltImage(pageCount: 3)
        file.meta(0, root: 2, count: 3, txid: 4)
        file.meta(1, root: 2, count: 3, txid: 5)
        file.leaf(2, [("v1", "not a bucket"), ("version", "3")])
        let fs = MemoryFileSystem()
        fs.addFile("io.containerd.metadata.v1.bolt/meta.db", file.bytes)
        let dir = DataRoot(reader: fs, inode: fs.rootInode, path: "/c", engine: "containerd", role: .helper)
        let store = ContainerdStore(dir: dir)
        store.load()
        #expect(store.namespaces.isEmpty)
        #expect(dir.problems.contains("/c/io.containerd.metadata.v1.bolt/meta.db: has no v1 bucket: no namespace, image or snapshot is recorded"),
                "\(dir.problems)")
        // The same leaf read as a bucket of records: each value is a problem, an allowed one is not.
        let db = try Bolt.Database(source: MemorySource(file.bytes, name: "m"), name: "m")
        let other = DataRoot(reader: fs, inode: fs.rootInode, path: "/c", engine: "containerd", role: .helper)
        #expect(try other.boltRecords(db.root, at: "meta.db", values: ["version"]).isEmpty)
        #expect(other.problems == ["/c/meta.db/v1: is a value where a record (bucket) belongs; ignored"])
    }
}

