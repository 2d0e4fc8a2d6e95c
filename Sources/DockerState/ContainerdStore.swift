import BoltDB
import DiskImage
import FileSystems
import Foundation

/// A containerd root (`/mnt/data/docker/containerd/daemon` on HAOS 17, `/var/lib/containerd`,
/// k3s's `/var/lib/rancher/k3s/agent/containerd`), read offline:
/// - `io.containerd.metadata.v1.bolt/meta.db` (bbolt): `v1/<namespace>/images/<name>/
///   {createdat, updatedat, target/{digest, mediatype, size}, labels/}`,
///   `v1/<ns>/snapshots/<snapshotter>/<key>/{name, parent, children/, createdat, updatedat, labels/}`,
///   `v1/<ns>/content/blob/<digest>/{size, createdat, updatedat, labels/}`, `v1/<ns>/containers/<id>/`,
///   `v1/<ns>/leases/<id>/`;
/// - `io.containerd.content.v1.content/blobs/sha256/<hex>`: manifests, indexes, configs, layers;
/// - `io.containerd.snapshotter.v1.<snapshotter>/metadata.db` (bbolt): `v1/snapshots/<backend key>/
///   {id (uvarint), kind (1 byte: 1 view, 2 active, 3 committed), parent (backend key), size,
///   inodes (varints), created, updated (time.MarshalBinary), labels/}`, and `snapshots/<id>/fs`.
/// Every problem is noted on `dir` (a DataRoot helper rooted at the containerd root, so paths
/// are read inside its filesystem without following symlinks).
final class ContainerdStore {
    let dir: DataRoot
    static let metaDB = "io.containerd.metadata.v1.bolt/meta.db"
    static let content = "io.containerd.content.v1.content/blobs/sha256"
    static let kinds: [UInt8: String] = [1: "View", 2: "Active", 3: "Committed"]

    struct Snapshot {
        var key: String
        var name: String?
        var parent: String?
        var createdAt: String?
    }

    struct Backend {
        var key: String
        var id: UInt64?
        var kind: String?
        var parent: String?
    }

    struct Image {
        var name: String
        var digest: String?
        var mediaType: String?
        var size: Int64?
        var createdAt: String?
        var updatedAt: String?
    }

    struct Namespace {
        var name: String
        var images: [Image] = []
        /// snapshotter -> key -> snapshot
        var snapshots: [String: [String: Snapshot]] = [:]
        var content: [(digest: String, size: Int64?)] = []
        /// containerd container records: id, `snapshotKey`, `snapshotter`, `image` (a name).
        var containers: [(id: String, snapshotKey: String?, snapshotter: String?, image: String?)] = []
        var leases: [String] = []
    }

    var namespaces: [Namespace] = []
    /// snapshotter -> backend key -> record
    var backends: [String: [String: Backend]] = [:]

    init(dir: DataRoot) {
        self.dir = dir
    }

    func database(_ relative: String) -> Bolt.Database? {
        guard let e = dir.entry(relative) else { return nil }
        guard e.metadata.type == .regular else {
            dir.problem(relative, "is not a regular file; not read")
            return nil
        }
        do {
            let source = try FileByteSource(reader: dir.reader, inode: e.inode, name: "\(dir.path)/\(relative)")
            return try Bolt.Database(source: source, name: "\(dir.path)/\(relative)")
        } catch {
            dir.problem(relative, "cannot read the bbolt file: \(FWError(error).message)")
            return nil
        }
    }

    /// Reads meta.db and every snapshotter's metadata.db. Problems are noted, never thrown.
    func load() {
        if let db = database(Self.metaDB) {
            do {
                for (ns, bucket) in try db.root.bucket(named: "v1")?.buckets() ?? [] {
                    namespaces.append(try namespace(ns, bucket))
                }
            } catch {
                dir.problem(Self.metaDB, FWError(error).message)
            }
        } else if dir.entry(Self.metaDB) == nil {
            dir.problem(Self.metaDB, "the containerd metadata database is missing")
        }
        for plugin in dir.names("") where plugin.hasPrefix("io.containerd.snapshotter.v1.") {
            let snapshotter = String(plugin.dropFirst("io.containerd.snapshotter.v1.".count))
            let relative = "\(plugin)/metadata.db"
            guard dir.entry(relative) != nil, let db = database(relative) else { continue }
            do {
                var records: [String: Backend] = [:]
                for (key, bucket) in try db.root.bucket(path: ["v1", "snapshots"])?.buckets() ?? [] {
                    let v = try bucket.values()
                    records[key] = Backend(key: key, id: v["id"].flatMap(GoBinary.uvarint),
                                           kind: v["kind"].flatMap { $0.count == 1 ? Self.kinds[$0[0]] ?? "Unknown" : nil },
                                           parent: v["parent"].map { String(decoding: $0, as: UTF8.self) })
                }
                backends[snapshotter] = records
            } catch {
                dir.problem(relative, FWError(error).message)
            }
        }
    }

    private func namespace(_ name: String, _ bucket: Bolt.Bucket) throws -> Namespace {
        var ns = Namespace(name: name)
        for (image, b) in try bucket.bucket(named: "images")?.buckets() ?? [] {
            let v = try b.values()
            let target = try b.bucket(named: "target")?.values() ?? [:]
            ns.images.append(Image(name: image, digest: target["digest"].map { String(decoding: $0, as: UTF8.self) },
                                   mediaType: target["mediatype"].map { String(decoding: $0, as: UTF8.self) },
                                   size: target["size"].flatMap(GoBinary.varint),
                                   createdAt: v["createdat"].flatMap(GoBinary.time), updatedAt: v["updatedat"].flatMap(GoBinary.time)))
        }
        for (snapshotter, sb) in try bucket.bucket(named: "snapshots")?.buckets() ?? [] {
            var keys: [String: Snapshot] = [:]
            for (key, b) in try sb.buckets() {
                let v = try b.values()
                keys[key] = Snapshot(key: key, name: v["name"].map { String(decoding: $0, as: UTF8.self) },
                                     parent: v["parent"].map { String(decoding: $0, as: UTF8.self) },
                                     createdAt: v["createdat"].flatMap(GoBinary.time))
            }
            ns.snapshots[snapshotter] = keys
        }
        for (digest, b) in try bucket.bucket(path: ["content", "blob"])?.buckets() ?? [] {
            ns.content.append((digest, try b.values()["size"].flatMap(GoBinary.varint)))
        }
        for (id, b) in try bucket.bucket(named: "containers")?.buckets() ?? [] {
            let v = try b.values()
            func text(_ k: String) -> String? { v[k].map { String(decoding: $0, as: UTF8.self) } }
            ns.containers.append((id, text("snapshotKey"), text("snapshotter"), text("image")))
        }
        ns.leases = try bucket.bucket(named: "leases")?.buckets().map(\.name) ?? []
        return ns
    }

    // MARK: Content

    /// The relative path of a blob, or nil (with a problem) for a digest that is not sha256:<64 hex>.
    func blobPath(_ digest: String) -> String? {
        let hex = digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : ""
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return "\(Self.content)/\(hex)"
    }

    /// A JSON blob (manifest, index, config) decoded as `T`, or nil when missing (noted by the
    /// caller) or not valid JSON of that kind (a problem).
    func jsonBlob<T: Decodable>(_ digest: String, as type: T.Type) -> T? {
        guard let path = blobPath(digest), dir.entry(path) != nil else { return nil }
        return dir.json(path, as: T.self)
    }

    /// The manifest of a target: the target itself, or for an index its first manifest present
    /// in the content store for a real platform (not the `unknown/unknown` attestations), with
    /// its digest, size as the index states it, and platform.
    func resolveManifest(_ digest: String, _ target: OCI.Target) -> (digest: String, size: Int64, manifest: OCI.Manifest, platform: String?)? {
        let index: OCI.Index
        switch target {
        case .manifest(let manifest): return (digest, 0, manifest, nil)
        case .index(let i): index = i
        }
        let usable = index.manifests.filter { $0.platform?.os != "unknown" && $0.digest.map(hasBlob) == true }
        guard let chosen = usable.first, let d = chosen.digest, let m = jsonBlob(d, as: OCI.Manifest.self) else { return nil }
        return (d, chosen.size ?? 0, m, chosen.platform?.display)
    }

    /// The layer blob digests of an image target, bottom first, or nil when its manifest is missing.
    func layerBlobs(_ target: String) -> [String]? {
        guard let t = jsonBlob(target, as: OCI.Target.self), let resolved = resolveManifest(target, t) else { return nil }
        return resolved.manifest.layers.compactMap(\.digest)
    }

    func hasBlob(_ digest: String) -> Bool {
        guard let path = blobPath(digest) else { return false }
        return dir.entry(path)?.metadata.type == .regular
    }

    /// Checks every blob in the content store: its SHA-256 must equal its name.
    func verifyBlobs() -> Int {
        var count = 0
        for hex in dir.names(Self.content) {
            let path = "\(Self.content)/\(hex)"
            guard let e = dir.entry(path), e.metadata.type == .regular else { continue }
            count += 1
            do {
                let file = try dir.reader.openFile(e.inode)
                var hash = SHA256()
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                    if n == 0 { break }
                    hash.update(buffer[0..<n])
                }
                let actual = hash.finalize().map { String(format: "%02x", $0) }.joined()
                if actual != hex { dir.problem(path, "content is sha256:\(actual), not the digest it is named by") }
            } catch {
                dir.problem(path, "cannot read: \(FWError(error).message)")
            }
        }
        return count
    }

    // MARK: Snapshots

    /// The chain of a snapshot key in a namespace, top first: (key, filesystem directory
    /// relative to the containerd root). Problems (missing parent, missing backend record or
    /// directory, a loop) end the chain and are returned.
    func chain(_ key: String, namespace: Namespace, snapshotter: String) -> (keys: [String], dirs: [String], problem: String?) {
        var keys: [String] = [], dirs: [String] = []
        var current: String? = key
        var seen = Set<String>()
        let records = namespace.snapshots[snapshotter] ?? [:]
        while let k = current {
            guard seen.insert(k).inserted else {
                return (keys, dirs, "the snapshot chain of \(key) loops at \(k)")
            }
            guard seen.count <= DataRoot.maximumLayers else {
                return (keys, dirs, "the snapshot chain of \(key) is longer than \(DataRoot.maximumLayers) snapshots; not followed beyond \(keys.last ?? key)")
            }
            guard let s = records[k] else {
                return (keys, dirs, keys.isEmpty ? "snapshot \(k) does not exist" : "snapshot \(keys.last ?? key) names parent \(k), which does not exist")
            }
            guard let name = s.name, let backend = backends[snapshotter]?[name], let id = backend.id else {
                return (keys, dirs, "snapshot \(k) has no record in the \(snapshotter) snapshotter's metadata.db")
            }
            let fs = "io.containerd.snapshotter.v1.\(snapshotter)/snapshots/\(id)/fs"
            guard dir.directory(fs) != nil else {
                return (keys, dirs, "snapshot \(k): its directory \(fs) is missing")
            }
            keys.append(k)
            dirs.append(fs)
            current = s.parent
        }
        return (keys, dirs, nil)
    }
}
