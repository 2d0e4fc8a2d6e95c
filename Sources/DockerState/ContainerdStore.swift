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

    struct Namespace {
        var name: String
        /// Image records as the report lists them (`ImageRecord`), content blobs likewise.
        var images: [ImageRecord] = []
        /// snapshotter -> key -> snapshot
        var snapshots: [String: [String: Snapshot]] = [:]
        var content: [ContentInfo] = []
        /// containerd container records: id, `snapshotKey`, `snapshotter`, `image` (a name).
        var containers: [(id: String, snapshotKey: String?, snapshotter: String?, image: String?)] = []
        var leases: [String] = []
    }

    var namespaces: [Namespace] = []
    /// snapshotter -> backend key -> record
    var backends: [String: [String: Backend]] = [:]

    /// The device's architecture: an index resolves to its manifest for it.
    let architecture: DeviceArchitecture?

    init(dir: DataRoot, architecture: DeviceArchitecture? = nil) {
        self.dir = dir
        self.architecture = architecture
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

    /// Reads meta.db and every snapshotter's metadata.db. Problems are noted, never thrown: a
    /// malformed record (a value where a record belongs, a size, time, id or kind that does not
    /// decode or makes no sense, a snapshot that is its own parent) is one, named by its place
    /// (`meta.db v1/<ns>/<bucket>/<key>/<field>`), and its field is left out.
    func load() {
        if let db = database(Self.metaDB) {
            do {
                let v1 = try db.root.bucket(named: "v1")
                if v1 == nil { dir.problem(Self.metaDB, "has no v1 bucket: no namespace, image or snapshot is recorded") }
                for (ns, bucket) in try records(v1, at: "\(Self.metaDB) v1") {
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
                backends[snapshotter] = try backendRecords(db, at: "\(relative) v1/snapshots")
            } catch {
                dir.problem(relative, FWError(error).message)
            }
        }
    }

    /// A snapshotter's metadata.db records: `v1/snapshots/<backend key>/{id, kind, parent}`.
    private func backendRecords(_ db: Bolt.Database, at place: String) throws -> [String: Backend] {
        var result: [String: Backend] = [:]
        for (key, bucket) in try records(db.root.bucket(path: ["v1", "snapshots"]), at: place) {
            let v = try bucket.values()
            let at = "\(place)/\(key)"
            var backend = Backend(key: key, id: field(v, "id", at: at, GoBinary.uvarint),
                                  parent: v["parent"].map { String(decoding: $0, as: UTF8.self) })
            if backend.id == nil, v["id"] == nil { dir.problem(at, "has no id; its directory cannot be found") }
            if let kind = v["kind"] {
                backend.kind = kind.count == 1 ? Self.kinds[kind[0]] ?? "Unknown" : nil
                if backend.kind == nil || backend.kind == "Unknown" {
                    dir.problem("\(at)/kind", "\(kind.count == 1 ? "kind \(kind[0])" : "a \(kind.count)-byte value") is not a snapshot kind (1 View, 2 Active, 3 Committed)")
                }
            }
            if backend.parent == key { dir.problem("\(at)/parent", "the snapshot is its own parent") }
            result[key] = backend
        }
        return result
    }

    func records(_ bucket: Bolt.Bucket?, at place: String) throws -> [(name: String, bucket: Bolt.Bucket)] {
        try dir.boltRecords(bucket, at: place, values: place == "\(Self.metaDB) v1" ? ["version"] : [])   // meta.db's v1/version is a value
    }

    /// The value at `key` decoded by `decode`, nil when absent; one that does not decode is a
    /// problem at `place`/`key`.
    func field<T>(_ values: [String: [UInt8]], _ key: String, at place: String, _ decode: ([UInt8]) -> T?) -> T? {
        guard let bytes = values[key] else { return nil }
        guard let value = decode(bytes) else {
            dir.problem("\(place)/\(key)", "\(bytes.count)-byte value does not decode; ignored")
            return nil
        }
        return value
    }

    /// The largest size a record may state (1 PiB): a negative size, or 2^63-1, is a malformed record.
    static let maximumSize: Int64 = 1 << 50

    /// A `size` field: a Go varint from 0 to 1 PiB, else a problem at `place`.
    func size(_ values: [String: [UInt8]], at place: String) -> Int64? {
        guard let n = field(values, "size", at: place, GoBinary.varint) else { return nil }
        guard n >= 0, n <= Self.maximumSize else {
            dir.problem("\(place)/size", "\(n) bytes is \(n < 0 ? "negative" : "more than 1 PiB"); ignored")
            return nil
        }
        return n
    }

    private func namespace(_ name: String, _ bucket: Bolt.Bucket) throws -> Namespace {
        var ns = Namespace(name: name)
        let base = "\(Self.metaDB) v1/\(name)"
        func text(_ v: [String: [UInt8]], _ k: String) -> String? { v[k].map { String(decoding: $0, as: UTF8.self) } }
        for (image, b) in try records(bucket.bucket(named: "images"), at: "\(base)/images") {
            let at = "\(base)/images/\(image)"
            let v = try b.values()
            let target = try b.bucket(named: "target")?.values() ?? [:]
            ns.images.append(ImageRecord(name: image, digest: text(target, "digest"), mediaType: text(target, "mediatype"),
                                         size: size(target, at: "\(at)/target"),
                                         createdAt: field(v, "createdat", at: at, GoBinary.time), updatedAt: field(v, "updatedat", at: at, GoBinary.time)))
        }
        for (snapshotter, sb) in try records(bucket.bucket(named: "snapshots"), at: "\(base)/snapshots") {
            var keys: [String: Snapshot] = [:]
            for (key, b) in try records(sb, at: "\(base)/snapshots/\(snapshotter)") {
                let at = "\(base)/snapshots/\(snapshotter)/\(key)"
                let v = try b.values()
                keys[key] = Snapshot(key: key, name: text(v, "name"), parent: text(v, "parent"), createdAt: field(v, "createdat", at: at, GoBinary.time))
                if keys[key]?.parent == key { dir.problem("\(at)/parent", "the snapshot is its own parent") }
            }
            ns.snapshots[snapshotter] = keys
        }
        for (digest, b) in try records(bucket.bucket(path: ["content", "blob"]), at: "\(base)/content/blob") {
            if blobPath(digest) == nil { dir.problem("\(base)/content/blob/\(digest)", "is not a sha256 digest (sha256:<64 hex digits>)") }
            ns.content.append(ContentInfo(digest: digest, size: size(try b.values(), at: "\(base)/content/blob/\(digest)")))
        }
        for (id, b) in try records(bucket.bucket(named: "containers"), at: "\(base)/containers") {
            let v = try b.values()
            ns.containers.append((id, text(v, "snapshotKey"), text(v, "snapshotter"), text(v, "image")))
        }
        ns.leases = try records(bucket.bucket(named: "leases"), at: "\(base)/leases").map(\.name)
        return ns
    }

    // MARK: Content

    /// The relative path of a blob, or nil (with a problem) for a digest that is not sha256:<64 hex>.
    func blobPath(_ digest: String) -> String? {
        let hex = digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : ""
        guard hex.count == 64, hex.allSatisfy(\.isLowercaseHex) else { return nil }
        return "\(Self.content)/\(hex)"
    }

    /// A JSON blob (manifest, index, config) decoded as `T`, or nil when missing (noted by the
    /// caller) or not valid JSON of that kind (a problem).
    func jsonBlob<T: Decodable>(_ digest: String, as type: T.Type) -> T? {
        guard let path = blobPath(digest), dir.entry(path) != nil else { return nil }
        return dir.json(path, as: T.self)
    }

    /// The manifest of a target: the target itself, or for an index its manifest present in the
    /// content store for the device's architecture, else its first present for a real platform
    /// (not the `unknown/unknown` attestations), with its digest, size as the index states it, and
    /// platform; `fallback` says which one was used when the index has none for the device.
    func resolveManifest(_ digest: String, _ target: OCI.Target)
        -> (digest: String, size: Int64, manifest: OCI.Manifest, platform: String?, fallback: String?)? {
        let index: OCI.Index
        switch target {
        case .manifest(let manifest): return (digest, 0, manifest, nil, nil)
        case .index(let i): index = i
        }
        let usable = index.manifests.filter { $0.platform?.os != "unknown" && $0.digest.map(hasBlob) == true }
        // The device's own platform, else the compatible one containerd prefers (the first of
        // equals, as containerd's stable sort keeps them).
        let native = architecture.flatMap { arch in
            usable.compactMap { m in
                arch.preference(architecture: m.platform?.architecture, variant: m.platform?.variant, os: m.platform?.os).map { (m, $0) }
            }.min { $0.1 < $1.1 }?.0
        }
        guard let chosen = native ?? usable.first, let d = chosen.digest, let m = jsonBlob(d, as: OCI.Manifest.self) else { return nil }
        var fallback: String?
        if native == nil, let arch = architecture, let other = chosen.platform?.architecture {
            fallback = "the index has no manifest present for the device's architecture \(arch.display) (ELF header of \(arch.source)); "
                + "the first present, \(chosen.platform?.display ?? other) \(d), is used"
        }
        return (d, chosen.size ?? 0, m, chosen.platform?.display, fallback)
    }

    /// The layer blob digests of an image target, bottom first, or nil when its manifest is missing.
    func layerBlobs(_ target: String) -> [String]? {
        guard let t = jsonBlob(target, as: OCI.Target.self), let resolved = resolveManifest(target, t) else { return nil }
        return (resolved.manifest.layers ?? []).compactMap(\.digest)
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
                var hash = SHA256()
                try dir.reader.openFile(e.inode).forEachChunk { hash.update($0) }
                let actual = hash.finalizeHex()
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
