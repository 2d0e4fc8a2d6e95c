import Assembly
import DiskImage
import FileSystems
import Foundation

/// Finds the Docker and balena-engine data-roots of a booted namespace: daemon.json
/// (`data-root`, legacy `graph`), the engine units' `--data-root`/`-g`/`--graph` options, and the
/// default locations. Each is reported once, by its real location: paths reached through a bind
/// mount are rewritten to the bind's source, and the same directory (filesystem + inode) found
/// several ways is one data-root.
public enum DataRootLocator {
    public struct Candidate: Sendable, Equatable {
        public var path: String
        public var engine: String
        /// What named it: "/etc/docker/daemon.json", "docker.service ExecStart", "default".
        public var source: String
    }

    static let daemonFiles = [("/etc/docker/daemon.json", "docker"), ("/usr/lib/docker/daemon.json", "docker"),
                              ("/etc/balena-engine/daemon.json", "balena-engine")]
    static let unitDirectories = ["/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"]
    static let units = [("docker.service", "docker"), ("balena-engine.service", "balena-engine"), ("balena.service", "balena-engine")]
    static let defaults = [("/var/lib/docker", "docker"), ("/var/lib/balena-engine", "balena-engine"),
                           ("/var/lib/balena", "balena-engine"), ("/balena", "balena-engine")]

    /// Candidate paths, configured ones first, and problems met reading the configuration.
    public static func candidates(in namespace: NamespaceFileSystem) -> ([Candidate], [String]) {
        var result: [Candidate] = []
        var problems: [String] = []
        for (file, engine) in daemonFiles {
            guard let (layer, meta) = namespace.locate(NamespacePath(file)), meta.type == .regular else { continue }
            let bytes: [UInt8]
            do {
                bytes = try layer.reader.readSmallFile(layer.inode, limit: 1 << 20)
            } catch {
                problems.append("\(file): invalid JSON or unreadable: \((error as? FWError)?.description ?? "truncated or malformed")")
                continue
            }
            switch JSONContent.decode(DockerJSON.DaemonConfig.self, from: bytes) {
            case .success(let config):
                for (key, path) in [("data-root", config.dataRoot), ("graph", config.graph)] {
                    if let path, path.hasPrefix("/") {
                        result.append(Candidate(path: path, engine: engine, source: "\(file) \(key)"))
                    }
                }
            case .failure(.wrongKind):
                problems.append("\(file): not a JSON object")
            case .failure(.invalid):
                problems.append("\(file): invalid JSON or unreadable: truncated or malformed")
            }
        }
        for (unit, engine) in units {
            var files: [String] = []
            for dir in unitDirectories {
                files.append("\(dir)/\(unit)")
                if let (layer, meta) = namespace.locate(NamespacePath("\(dir)/\(unit).d")), meta.type == .directory,
                   let entries = reading("\(dir)/\(unit).d", &problems, { try layer.reader.directoryEntries(of: layer.inode) }) {
                    for e in entries.map({ String(decoding: $0.name, as: UTF8.self) }).sorted() where e.hasSuffix(".conf") {
                        files.append("\(dir)/\(unit).d/\(e)")
                    }
                }
            }
            for file in files {
                guard let (layer, meta) = namespace.locate(NamespacePath(file)), meta.type == .regular,
                      let bytes = reading(file, &problems, { try layer.reader.readSmallFile(layer.inode, limit: 1 << 20) }) else { continue }
                for path in dataRootOptions(inUnit: String(decoding: bytes, as: UTF8.self)) {
                    result.append(Candidate(path: path, engine: engine, source: "\(file)"))
                }
            }
        }
        for (path, engine) in defaults {
            result.append(Candidate(path: path, engine: engine, source: "default"))
        }
        return (result, problems)
    }

    /// `--data-root X`, `--data-root=X`, `-g X`, `--graph X` in ExecStart= and Environment= lines.
    public static func dataRootOptions(inUnit text: String) -> [String] {
        var paths: [String] = []
        var joined: [String] = []
        var current = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = String(raw)
            if line.hasSuffix("\\") {
                line.removeLast()
                current += line + " "
                continue
            }
            joined.append(current + line)
            current = ""
        }
        for line in joined {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard let eq = trimmed.firstIndex(of: "=") else { continue }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            guard key == "ExecStart" || key == "Environment" else { continue }
            let tokens = trimmed[trimmed.index(after: eq)...].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "'" })
                .map(String.init)
            var i = 0
            while i < tokens.count {
                var token = tokens[i]
                if let eqIndex = token.firstIndex(of: "="), !token.hasPrefix("-") {
                    token = String(token[token.index(after: eqIndex)...])  // DOCKER_OPTS=--data-root
                }
                for flag in ["--data-root", "--graph", "-g"] {
                    if token == flag, i + 1 < tokens.count, tokens[i + 1].hasPrefix("/") {
                        paths.append(tokens[i + 1])
                    } else if token.hasPrefix(flag + "="), token.count > flag.count + 1 {
                        let value = String(token.dropFirst(flag.count + 1))
                        if value.hasPrefix("/") { paths.append(value) }
                    }
                }
                i += 1
            }
        }
        return paths
    }

    /// Rewrites a path reached through a bind mount to the bind's source (`binds` as
    /// (target, source) in plan order; at most 16 rewrites).
    public static func realPath(_ path: String, binds: [(target: String, source: String)]) -> String {
        var current = NamespacePath(path)
        for _ in 0..<16 {
            var changed = false
            for bind in binds.reversed() {
                guard let rest = current.relative(to: NamespacePath(bind.target)) else { continue }
                let rewritten = NamespacePath(components: NamespacePath(bind.source).components + rest)
                if rewritten != current {
                    current = rewritten
                    changed = true
                    break
                }
            }
            if !changed { break }
        }
        return current.display
    }

    /// The data-roots: each candidate that exists as a directory and looks like a data-root
    /// (has image/, overlay2/, containers/ or containerd/), deduplicated by filesystem and inode.
    public static func locate(in namespace: NamespaceFileSystem, binds: [(target: String, source: String)] = []) -> ([(root: DataRoot, foundVia: [String])], [String]) {
        let (candidates, configProblems) = candidates(in: namespace)
        var problems = configProblems
        let systemRoot = systemContainerdRoot(in: namespace, problems: &problems)
        var found: [(root: DataRoot, foundVia: [String], key: String)] = []
        for c in candidates {
            guard let (layer, meta) = namespace.locate(NamespacePath(c.path)), meta.type == .directory else {
                if c.source != "default" { problems.append("\(c.path) (from \(c.source)): data-root does not exist in the namespace") }
                continue
            }
            let key = "\(layer.filesystem.hashValue):\(layer.inode)"
            if let i = found.firstIndex(where: { $0.key == key }) {
                if !found[i].foundVia.contains(c.path) { found[i].foundVia.append(c.path) }
                continue
            }
            guard let names = reading(c.path, &problems, { try layer.reader.directoryEntries(of: layer.inode).map { String(decoding: $0.name, as: UTF8.self) } }),
                  names.contains(where: { ["image", "overlay2", "containers", "containerd"].contains($0) }) else {
                if c.source != "default" { problems.append("\(c.path) (from \(c.source)): not a data-root (no image/, overlay2/, containers/)") }
                continue
            }
            let real = realPath(c.path, binds: binds)
            let engine = c.path.contains("balena") || real.contains("balena") ? "balena-engine" : c.engine
            let root = DataRoot(reader: layer.reader, inode: layer.inode, path: real, engine: engine,
                                role: .dataRoot(systemContainerd: systemContainerd(systemRoot, engine: engine, in: namespace, binds: binds),
                                                linkedContainerd: linkedContainerd(c.path, real: real, dataRoot: layer, engine: engine, in: namespace)),
                                containerdFeature: containerdFlag(dataRootPath: c.path, realPath: real, in: namespace))
            found.append((root, [c.path], key))
        }
        // containerd alone (k3s, a system containerd no Docker data-root uses).
        for (path, engine) in containerdRoots.map({ $0.1 == "containerd" ? (systemRoot, "containerd") : $0 }) {
            guard let (layer, meta) = namespace.locate(NamespacePath(path)), meta.type == .directory,
                  reading(path, &problems, { try layer.reader.entry(named: Array("io.containerd.metadata.v1.bolt".utf8), in: layer.inode) }) != nil
            else { continue }
            let key = "\(layer.filesystem.hashValue):\(layer.inode)"
            let real = realPath(path, binds: binds)
            if found.contains(where: { $0.key == key || ($0.root.containerdRoot?.path == real && $0.root.store == .containerd) }) { continue }
            found.append((DataRoot(reader: layer.reader, inode: layer.inode, path: real, engine: engine, role: .containerdAlone), [path], key))
        }
        for path in podmanRoots {
            guard let (layer, meta) = namespace.locate(NamespacePath(path)), meta.type == .directory,
                  let names = reading(path, &problems, { try layer.reader.directoryEntries(of: layer.inode).map { String(decoding: $0.name, as: UTF8.self) } }),
                  names.contains("overlay-layers") || names.contains("overlay-containers") else { continue }
            let key = "\(layer.filesystem.hashValue):\(layer.inode)"
            if found.contains(where: { $0.key == key }) { continue }
            found.append((DataRoot(reader: layer.reader, inode: layer.inode, path: realPath(path, binds: binds), engine: "podman", role: .podman),
                          [path], key))
        }
        let architecture = found.isEmpty ? nil : DeviceArchitecture.detect(in: namespace)
        for f in found { f.root.deviceArchitecture = architecture }
        return (found.map { ($0.root, $0.foundVia) }, problems)
    }

    /// containerd roots that serve no Docker data-root: k3s's and the system containerd's.
    static let containerdRoots = [("/var/lib/rancher/k3s/agent/containerd", "k3s"), ("/var/lib/containerd", "containerd")]
    /// Podman's (containers/storage) default graph root.
    static let podmanRoots = ["/var/lib/containers/storage"]

    /// The system containerd's root: top-level `root = "..."` of `/etc/containerd/config.toml`
    /// (before any [section]), else `/var/lib/containerd`.
    static func systemContainerdRoot(in namespace: NamespaceFileSystem, problems: inout [String]) -> String {
        let fallback = "/var/lib/containerd"
        let file = "/etc/containerd/config.toml"
        guard let (layer, meta) = namespace.locate(NamespacePath(file)), meta.type == .regular,
              let bytes = reading(file, &problems, { try layer.reader.readSmallFile(layer.inode, limit: 1 << 20) }) else { return fallback }
        for raw in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") { break }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, parts[0] == "root" else { continue }
            let value = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            if value.hasPrefix("/") { return value }
        }
        return fallback
    }

    /// The system containerd's root (`/var/lib/containerd` or config.toml's `root`), which a Docker
    /// data-root without a containerd of its own (`<data-root>/containerd/daemon`) uses for the
    /// containerd image store; nil when it has no `io.containerd.metadata.v1.bolt/`.
    static func systemContainerd(_ system: String, engine: String, in namespace: NamespaceFileSystem,
                                 binds: [(target: String, source: String)]) -> DataRoot? {
        guard let (_, meta) = namespace.locate(NamespacePath(system + "/io.containerd.metadata.v1.bolt")), meta.type == .directory,
              let (dir, _) = namespace.locate(NamespacePath(system)) else { return nil }
        return DataRoot(reader: dir.reader, inode: dir.inode, path: realPath(system, binds: binds), engine: engine, role: .helper)
    }

    /// `<data-root>/containerd/daemon` resolved in the namespace as dockerd would (symlinks
    /// followed), kept only when it is a directory in the data-root's own filesystem; the
    /// `DataRoot` uses it only when the path itself is not a directory (a symlink on the way).
    static func linkedContainerd(_ path: String, real: String, dataRoot: Layer, engine: String,
                                 in namespace: NamespaceFileSystem) -> DataRoot? {
        guard let (layer, meta) = namespace.locate(NamespacePath(path + "/containerd/daemon")), meta.type == .directory,
              layer.filesystem == dataRoot.filesystem else { return nil }
        return DataRoot(reader: layer.reader, inode: layer.inode, path: real + "/containerd/daemon", engine: engine, role: .helper)
    }

    /// The HAOS flag file `<parent of data-root>/.docker-use-containerd-snapshotter`, beside the
    /// data-root as configured or as it really is.
    static func containerdFlag(dataRootPath: String, realPath: String, in namespace: NamespaceFileSystem) -> Bool {
        Set([dataRootPath, realPath]).contains { base in
            let parent = NamespacePath(base).components.dropLast()
            return namespace.locate(NamespacePath(components: Array(parent) + [Array(".docker-use-containerd-snapshotter".utf8)])) != nil
        }
    }

    /// `body`'s answer, nil when it throws: the error is a problem against `path` (the daemon
    /// would log it and carry on without the file).
    static func reading<T>(_ path: String, _ problems: inout [String], _ body: () throws -> T?) -> T? {
        do {
            return try body()
        } catch {
            problems.append("\(path): unreadable: \(FWError(error).description)")
            return nil
        }
    }

    /// The whole report for a namespace.
    public static func report(for namespace: NamespaceFileSystem, binds: [(target: String, source: String)] = []) -> DockerReport {
        let (roots, problems) = locate(in: namespace, binds: binds)
        return DockerReport(dataRoots: roots.map { $0.root.inspect(foundVia: $0.foundVia) }, problems: problems)
    }
}
