import Assembly
import DiskImage
import FileSystems
import Foundation

/// One Docker (or balena-engine) data-root: a directory in one filesystem, read without ever
/// following a symlink out of it. Every id read from a file is checked before it names a path.
public final class DataRoot {
    public let reader: any FileSystemReader
    public let inode: UInt64
    /// Where it is in the namespace, for messages and the report.
    public let path: String
    public let engine: String
    var problems: [String] = []
    /// The problems met deciding the store (an unreadable `containers/`...): every inspection starts with them.
    private(set) var decisionProblems: [String] = []
    /// The containerd root serving this data-root when it uses the containerd image store
    /// (`<data-root>/containerd/daemon` as dockerd starts it, or a system `/var/lib/containerd`),
    /// or the data-root itself for containerd alone (k3s).
    public private(set) var containerdRoot: DataRoot?
    /// `/mnt/data/.docker-use-containerd-snapshotter` (HAOS 17: dockerd gets
    /// `--feature containerd-snapshotter`) or `features.containerd-snapshotter` in daemon.json.
    public let containerdFeature: Bool
    /// Which store holds the images and containers, decided once when the data-root is made.
    public private(set) var store: StoreKind = .unknown
    /// The report's `driver`: "overlay2", "containerd-snapshotter", "overlay" (Podman) or "unknown".
    public private(set) var driver = "unknown"
    /// The device's architecture (`DeviceArchitecture.detect`, set by the locator): an image
    /// index resolves to its manifest for it.
    public internal(set) var deviceArchitecture: DeviceArchitecture?

    /// Size caps for the files read (configuration-sized JSON and id files).
    static let jsonLimit = 8 << 20
    static let idLimit = 4096
    /// Bounds for walks inside layers and volumes.
    static let maximumDepth = 256
    static let maximumLayers = 256

    /// What a `DataRoot` is made for: a Docker data-root (with the system containerd's root, used
    /// when it has no containerd of its own), containerd alone (its own containerd root), Podman's
    /// store, or a helper reading a containerd root for the data-root it serves (no store of its own).
    enum Role {
        /// `linkedContainerd`: `<data-root>/containerd/daemon` reached through a symlink that stays
        /// in the data-root's filesystem (the locator resolves it in the namespace, as dockerd would).
        case dataRoot(systemContainerd: DataRoot?, linkedContainerd: DataRoot? = nil)
        case containerdAlone
        case podman
        case helper
    }

    /// A data-root; `containerdFeature` as the locator finds it (the HAOS flag file).
    public convenience init(reader: any FileSystemReader, inode: UInt64, path: String, engine: String, containerdFeature: Bool = false) {
        self.init(reader: reader, inode: inode, path: path, engine: engine, role: .dataRoot(systemContainerd: nil),
                  containerdFeature: containerdFeature)
    }

    init(reader: any FileSystemReader, inode: UInt64, path: String, engine: String, role: Role, containerdFeature: Bool = false) {
        self.reader = reader
        self.inode = inode
        self.path = path
        self.engine = engine
        self.containerdFeature = containerdFeature
        switch role {
        case .helper:
            return
        case .podman:
            (store, driver) = (.podman, "overlay")
            return
        case .containerdAlone:
            containerdRoot = self
            (store, driver) = (.containerd, "containerd-snapshotter")
            return
        case .dataRoot(let system, let linked):
            containerdRoot = ownContainerdRoot(linked: linked) ?? system
        }
        (store, driver) = decideStore()
        decisionProblems = problems
    }

    /// dockerd's own containerd (`--feature containerd-snapshotter`): <data-root>/containerd/daemon,
    /// or `linked` when that is a symlink the locator followed inside the data-root's filesystem.
    /// A symlink on the way that was not followed (it leaves the filesystem, dangles, or no
    /// locator resolved it) is a problem: the store would otherwise read as unknown and clean.
    private func ownContainerdRoot(linked: DataRoot?) -> DataRoot? {
        let own = "containerd/daemon"
        func isContainerdRoot(_ root: DataRoot) -> Bool {
            root.entry("io.containerd.metadata.v1.bolt", noteSymlinks: false) != nil
                || root.entry("io.containerd.snapshotter.v1.overlayfs", noteSymlinks: false) != nil
        }
        if let dir = entry(own, noteSymlinks: false), dir.metadata.type == .directory {
            let root = DataRoot(reader: reader, inode: dir.inode, path: "\(path)/\(own)", engine: engine, role: .helper)
            return isContainerdRoot(root) ? root : nil
        }
        if let linked, linked.reader === reader, isContainerdRoot(linked) { return linked }
        for link in ["containerd", own] {
            guard let e = entry(link, noteSymlinks: false), e.metadata.type == .symlink else { continue }
            problem(link, "is a symlink to \(String(decoding: e.metadata.symlinkTarget ?? [], as: UTF8.self)), which does not lead to "
                    + "a containerd root inside the data-root's filesystem; not followed (the containerd store is not read)")
            break
        }
        return nil
    }

    func problem(_ relative: String, _ message: String) {
        problems.append("\(path)/\(relative): \(message)")
    }

    /// `problem`, unless the same one was already noted.
    func problemOnce(_ relative: String, _ message: String) {
        let text = "\(path)/\(relative): \(message)"
        if !problems.contains(text) { problems.append(text) }
    }

    // MARK: Paths below the data-root

    /// Looks up a relative path component by component without following any symlink.
    /// Returns the inode and metadata, or nil when absent. A symlink met before the last
    /// component ends the lookup (nil) with a problem noted.
    func entry(_ relative: String, noteSymlinks: Bool = true) -> (inode: UInt64, metadata: Metadata)? {
        var current = inode
        var meta: Metadata
        do { meta = try reader.metadata(of: inode) } catch { return nil }
        let parts = relative.split(separator: "/").map { Array($0.utf8) }
        for (i, part) in parts.enumerated() {
            guard meta.type == .directory else {
                if meta.type == .symlink, noteSymlinks {
                    let shown = parts[0..<i].map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
                    problem(shown, "is a symlink to \(String(decoding: meta.symlinkTarget ?? [], as: UTF8.self)); not followed")
                }
                return nil
            }
            let shown = parts[0...i].map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
            do {
                guard let e = try reader.directoryEntries(of: current).first(where: { $0.name == part }) else { return nil }
                current = e.inode
                meta = try reader.metadata(of: e.inode)
            } catch {
                // Asked again and again (presence checks): noted once.
                problemOnce(shown, "cannot read: \(FWError(error).description)")
                return nil
            }
        }
        return (current, meta)
    }

    /// A directory at a relative path (not a symlink), or nil; a symlink there is a problem.
    func directory(_ relative: String) -> UInt64? {
        guard let e = entry(relative) else { return nil }
        if e.metadata.type == .symlink {
            problem(relative, "is a symlink to \(String(decoding: e.metadata.symlinkTarget ?? [], as: UTF8.self)); not followed")
            return nil
        }
        return e.metadata.type == .directory ? e.inode : nil
    }

    /// Names in a directory (sorted), empty when absent or unreadable.
    func names(_ relative: String) -> [String] {
        guard let dir = directory(relative) else { return [] }
        do {
            return try reader.directoryEntries(of: dir).map { String(decoding: $0.name, as: UTF8.self) }
                .filter { $0 != "." && $0 != ".." }.sorted()
        } catch {
            problem(relative, "cannot read the directory: \(FWError(error).description)")
            return []
        }
    }

    /// A small regular file's bytes, or nil when absent (problems for unreadable or oversized).
    func file(_ relative: String, limit: Int) -> [UInt8]? {
        guard let e = entry(relative) else { return nil }
        guard e.metadata.type == .regular else {
            if e.metadata.type == .symlink {
                problem(relative, "is a symlink; not followed")
            } else {
                problem(relative, "is not a regular file")
            }
            return nil
        }
        do {
            return try reader.readSmallFile(e.inode, limit: limit)
        } catch {
            problem(relative, "cannot read: \(FWError(error).description)")
            return nil
        }
    }

    /// A one-line id file (cache-id, mount-id, link...), trimmed.
    func text(_ relative: String) -> String? {
        guard let bytes = file(relative, limit: Self.idLimit) else { return nil }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A JSON file decoded as `T` (an object, or an array for containers/storage's records);
    /// invalid or truncated JSON, or JSON of another kind, is a problem.
    func json<T: Decodable>(_ relative: String, as type: T.Type = T.self, notThatKind: String = "is not a JSON object") -> T? {
        guard let bytes = file(relative, limit: Self.jsonLimit) else { return nil }
        switch JSONContent.decode(T.self, from: bytes) {
        case .success(let value):
            return value
        case .failure(.wrongKind):
            problem(relative, notThatKind)
        case .failure(.invalid):
            problem(relative, "invalid JSON (\(bytes.count) bytes): truncated or malformed")
        }
        return nil
    }

    // MARK: Store

    /// Which store holds the images and containers, and the driver reported with it, decided per
    /// data-root: the containers' `Driver` in config.v2.json first (overlayfs and the other
    /// containerd snapshotters mean the containerd store), then the HAOS flag file / daemon.json
    /// feature, then the presence of `overlay2/` + `image/overlay2/` (upgraded disks keep both),
    /// then a containerd root alone. (Podman's store and containerd alone are decided by their role.)
    private func decideStore() -> (StoreKind, driver: String) {
        let overlay2 = { self.entry("overlay2") != nil || self.entry("image/overlay2") != nil ? "overlay2" : "unknown" }
        guard containerdRoot != nil else {
            let driver = overlay2()
            return (driver == "overlay2" ? .overlay2 : .unknown, driver)
        }
        let containerd = (StoreKind.containerd, driver: "containerd-snapshotter")
        var drivers = Set<String>()
        for id in names("containers") {
            // Only a vote for the store: the container inventory reads the same file and reports it.
            guard let e = entry("containers/\(id)/config.v2.json"), e.metadata.type == .regular,
                  let bytes = try? reader.readSmallFile(e.inode, limit: Self.jsonLimit),   // reported by the inventory
                  case .success(let config) = JSONContent.decode(DockerJSON.Container.self, from: bytes),
                  let driver = config.driver else { continue }
            drivers.insert(driver)
        }
        if drivers.contains("overlay2") && !drivers.contains(where: { $0 != "overlay2" }) { return (.overlay2, overlay2()) }
        if !drivers.isEmpty && !drivers.contains("overlay2") { return containerd }
        if containerdFeature { return containerd }
        if entry("overlay2") != nil && entry("image/overlay2") != nil { return (.overlay2, "overlay2") }
        return containerd
    }

    /// The layer directory `overlay2/<cache-id>/diff` as a Layer, or nil (with a problem).
    func layerDiff(_ cacheID: String, for what: String) -> Layer? {
        guard NamespacePath.Component(cacheID) != nil else {
            problem(what, "layer id \(cacheID.debugDescription) is not a single path component; not followed")
            return nil
        }
        guard let top = entry("overlay2/\(cacheID)") else {
            problem(what, "layer directory overlay2/\(cacheID) is missing")
            return nil
        }
        if top.metadata.type == .symlink {
            problem("overlay2/\(cacheID)", "layer directory is a symlink to \(String(decoding: top.metadata.symlinkTarget ?? [], as: UTF8.self)); not followed")
            return nil
        }
        guard let diff = directory("overlay2/\(cacheID)/diff") else {
            problem(what, "layer overlay2/\(cacheID) has no diff directory")
            return nil
        }
        return Layer(reader: reader, inode: diff)
    }
}
