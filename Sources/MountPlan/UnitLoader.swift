import DiskImage
import FileSystems

/// Loads systemd units from a root filesystem with systemd's precedence: /etc over /run over
/// /usr/lib and /lib; a symlink to /dev/null masks; `.d/*.conf` drop-ins (including prefix
/// drop-ins such as `run-docker-.mount.d` and type drop-ins `mount.d`) apply in file-name order.
/// Symlinks are followed inside the image only.
final class UnitLoader {
    static let searchPath = ["/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"]
    /// Units examined while computing what is enabled (a guard against pathological images).
    static let maximumUnits = 20_000

    let fs: any FileSystemReader
    private(set) var warnings: [ConfigWarning] = []
    private var cache: [String: Loaded] = [:]
    /// Search-path directories that exist, deduplicated by inode (merged /usr makes /lib and
    /// /usr/lib the same directory).
    private lazy var directories: [(path: String, inode: UInt64)] = {
        var seen = Set<UInt64>()
        var dirs: [(String, UInt64)] = []
        for path in Self.searchPath {
            guard let (inode, meta) = find(path, followLast: true), meta.type == .directory, seen.insert(inode).inserted else { continue }
            dirs.append((path, inode))
        }
        return dirs
    }()

    enum Loaded {
        case unit(UnitFile)
        case masked(String)
        case missing
    }

    init(fs: any FileSystemReader) {
        self.fs = fs
    }

    /// Loads a unit by name, with its drop-ins.
    func load(_ name: String) -> Loaded {
        if let hit = cache[name] { return hit }
        var result = Loaded.missing
        for dir in directories {
            let path = dir.path + "/" + name
            guard let (inode, meta) = find(path, followLast: false) else { continue }
            if meta.type == .symlink, let target = meta.symlinkTarget {
                let t = String(decoding: target, as: UTF8.self)
                if t == "/dev/null" { result = .masked(path); break }
                guard let (resolved, rmeta) = find(path, followLast: true) else {
                    warnings.append(ConfigWarning(file: path, message: "symlink to \(t) is dangling inside the image; unit ignored"))
                    continue
                }
                if rmeta.type == .characterDevice { result = .masked(path); break }
                guard rmeta.type == .regular, let unit = parseFile(resolved, name: name, path: path) else { continue }
                result = .unit(unit)
                break
            }
            if meta.type == .characterDevice { result = .masked(path); break }
            guard meta.type == .regular, meta.size > 0 || true, let unit = parseFile(inode, name: name, path: path) else { continue }
            if meta.size == 0 { result = .masked(path); break } // an empty unit file masks too
            result = .unit(unit)
            break
        }
        if case .unit(var unit) = result {
            unit.assignments += dropIns(for: name)
            result = .unit(unit)
        }
        cache[name] = result
        return result
    }

    /// A path's inode and metadata; nil when it does not exist. A path that cannot be read (a
    /// damaged inode, a symlink loop) is nil too, with a warning naming it, as systemd would log.
    private func find(_ path: String, followLast: Bool) -> (inode: UInt64, metadata: Metadata)? {
        do {
            guard let inode = try fs.lookup(Array(path.utf8), followLast: followLast) else { return nil }
            return (inode, try fs.metadata(of: inode))
        } catch {
            warn(path, "unreadable: \(FWError(error).message)")
            return nil
        }
    }

    /// A directory's entries; nil with a warning when it cannot be listed.
    private func list(_ inode: UInt64, path: String) -> [DirectoryEntry]? {
        do {
            return try fs.directoryEntries(of: inode)
        } catch {
            warn(path, "cannot be listed: \(FWError(error).message)")
            return nil
        }
    }

    /// Records a warning once per file and message.
    private func warn(_ path: String, _ message: String) {
        let warning = ConfigWarning(file: path, message: message)
        if !warnings.contains(warning) { warnings.append(warning) }
    }

    private func parseFile(_ inode: UInt64, name: String, path: String) -> UnitFile? {
        do {
            let bytes = try fs.readSmallFile(inode, limit: 1 << 20)
            let (assignments, w) = UnitFile.parse(bytes, file: path)
            warnings += w
            return UnitFile(name: name, path: path, assignments: assignments)
        } catch {
            warnings.append(ConfigWarning(file: path, message: "unreadable: \(FWError(error).message)"))
            return nil
        }
    }

    /// Drop-in directories for a unit name, most general first: `mount.d`, then prefix
    /// drop-ins (`a-.mount.d`, `a-b-.mount.d`), then `a-b-c.mount.d`.
    static func dropInDirectoryNames(for name: String) -> [String] {
        guard let dot = name.lastIndex(of: ".") else { return [name + ".d"] }
        let stem = name[..<dot]
        let suffix = name[dot...]
        var names = [String(suffix.dropFirst()) + ".d"]
        let parts = stem.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count > 1 {
            for i in 1..<parts.count {
                names.append(parts[0..<i].joined(separator: "-") + "-" + suffix + ".d")
            }
        }
        names.append(name + ".d")
        return names
    }

    private func dropIns(for name: String) -> [UnitAssignment] {
        var result: [UnitAssignment] = []
        for dirName in Self.dropInDirectoryNames(for: name) {
            // Same file name in a higher-priority directory overrides; apply in file-name order.
            var files: [String: (String, UInt64)] = [:]
            for dir in directories.reversed() {
                let path = dir.path + "/" + dirName
                guard let (inode, _) = find(path, followLast: true), let entries = list(inode, path: path) else { continue }
                for e in entries {
                    let fname = String(decoding: e.name, as: UTF8.self)
                    guard fname.hasSuffix(".conf") else { continue }
                    files[fname] = (path + "/" + fname, e.inode)
                }
            }
            for fname in files.keys.sorted() {
                guard let (path, _) = files[fname], let (inode, meta) = find(path, followLast: true) else { continue }
                if meta.type != .regular { continue } // /dev/null drop-in: disabled
                guard let unit = parseFile(inode, name: name, path: path) else { continue }
                result += unit.assignments
            }
        }
        return result
    }

    /// Units named in `<unit>.wants/` and `<unit>.requires/` directories across the search path.
    func dependencyDirectoryEntries(of name: String) -> [String] {
        var names: [String] = []
        for dir in directories {
            for suffix in [".wants", ".requires"] {
                let path = dir.path + "/" + name + suffix
                guard let (inode, meta) = find(path, followLast: true), meta.type == .directory,
                      let entries = list(inode, path: path) else { continue }
                names += entries.map { String(decoding: $0.name, as: UTF8.self) }.sorted()
            }
        }
        return names
    }

    /// Every `*.mount` and `*.automount` unit name found in the search path, sorted.
    func allMountUnitNames() -> [String] {
        var names = Set<String>()
        for dir in directories {
            guard let entries = list(dir.inode, path: dir.path) else { continue }
            for e in entries {
                let n = String(decoding: e.name, as: UTF8.self)
                if n.hasSuffix(".mount") || n.hasSuffix(".automount") { names.insert(n) }
            }
        }
        return names.sorted()
    }

    /// Every unit name ending in `suffix` found in the search path, sorted.
    func allUnitNames(suffix: String) -> [String] {
        var names = Set<String>()
        for dir in directories {
            guard let entries = list(dir.inode, path: dir.path) else { continue }
            for e in entries {
                let n = String(decoding: e.name, as: UTF8.self)
                if n.hasSuffix(suffix) { names.insert(n) }
            }
        }
        return names.sorted()
    }

    /// The target the system boots into: `default.target` resolved through its symlink.
    func defaultTarget() -> String {
        for dir in directories {
            let path = dir.path + "/default.target"
            guard let (_, meta) = find(path, followLast: false) else { continue }
            if meta.type == .symlink, let target = meta.symlinkTarget {
                let t = String(decoding: target, as: UTF8.self)
                if let last = t.split(separator: "/").last { return String(last) }
            }
            return "default.target"
        }
        return "multi-user.target"
    }

    /// Units reachable from the boot targets through Wants=/Requires=/BindsTo=/Requisite=,
    /// `.wants`/`.requires` directories and RequiresMountsFor= (as mount unit names).
    func enabledUnits() -> Set<String> {
        var roots = [defaultTarget(), "multi-user.target", "graphical.target", "local-fs.target", "sysinit.target",
                     "basic.target", "remote-fs.target"]
        roots = roots.filter { !$0.isEmpty }
        var seen = Set<String>()
        var queue = roots
        while let name = queue.popLast() {
            guard seen.count < Self.maximumUnits else {
                warnings.append(ConfigWarning(file: "systemd units", message: "more than \(Self.maximumUnits) units reachable; stopped following dependencies"))
                break
            }
            guard seen.insert(name).inserted else { continue }
            var deps = dependencyDirectoryEntries(of: name)
            if case .unit(let unit) = load(name) {
                for key in ["Wants", "Requires", "BindsTo", "Requisite", "Upholds"] { deps += unit.list("Unit", key) }
                for path in unit.list("Unit", "RequiresMountsFor") + unit.list("Unit", "WantsMountsFor") {
                    // The mount units for the path and each parent.
                    var p = path
                    while !p.isEmpty && p != "/" {
                        deps.append(SystemdName.escapePath(p) + ".mount")
                        p = String(p[..<(p.lastIndex(of: "/") ?? p.startIndex)])
                    }
                }
            }
            queue += deps.filter { !seen.contains($0) }
        }
        return seen
    }
}
