import Assembly
import DiskImage
import FileSystems

/// balenaOS (field guide §3): the root partition holds a balena-engine data-root at /balena with
/// the OS as a container (the hostapp). The init reads the container's mount-id, that layer's
/// `diff` and `lower` files, mounts a read-only overlay of them (without the `-init` layer) and
/// pivots into it; the physical root stays visible at /mnt/sysroot/active. /mnt/boot, /mnt/state
/// and /mnt/data are mounted by `resin-partition-mounter` services, persistent paths are bound
/// from /mnt/state/root-overlay by `bind-<path>.service` units.
enum BalenaProfile {
    static let dataRoot = "/balena"
    static let mountsDirectory = "/balena/image/overlay2/layerdb/mounts"
    static let layersDirectory = "/balena/overlay2"

    static func bootedRoot(root: RootChoice, physical fs: any FileSystemReader) -> (root: BootedRoot?, warnings: [String]) {
        var warnings: [String] = []
        func fail(_ why: String) -> (root: BootedRoot?, warnings: [String]) {
            (nil, warnings + ["balenaOS: \(why); the plan uses the root partition itself as /"])
        }
        // The hostapp container: /current -> hostapps/<container id>, else the only container.
        let containers = ProfilePaths.names(in: mountsDirectory, of: fs, warnings: &warnings)
        var container: String
        var how: String
        if let target = ProfilePaths.symlinkTarget("/current", in: fs, warnings: &warnings),
           let last = target.split(separator: "/").last.map(String.init), ProfilePaths.isPlainName(last) {
            container = last
            how = "/current -> \(target)"
            if !containers.contains(container) {
                return fail("/current names container \(container), which has no \(mountsDirectory)/\(container)")
            }
        } else if containers.count == 1 {
            container = containers[0]
            how = "the only container in \(mountsDirectory)"
        } else if containers.isEmpty {
            return fail("no hostapp container in \(mountsDirectory)")
        } else {
            container = containers[0]
            how = "first of \(containers.count) containers in \(mountsDirectory) (no /current symlink)"
            warnings.append("balenaOS: no /current symlink and \(containers.count) containers; using \(container)")
        }
        let mountIDFile = "\(mountsDirectory)/\(container)/mount-id"
        guard let mountID = ProfilePaths.text(mountIDFile, in: fs, limit: 4096, warnings: &warnings), ProfilePaths.isPlainName(mountID) else {
            return fail("\(mountIDFile) is missing or not a layer id")
        }
        let layerDirectory = "\(layersDirectory)/\(mountID)"
        var lower = ["\(layerDirectory)/diff"]
        if let lowerText = ProfilePaths.text("\(layerDirectory)/lower", in: fs, warnings: &warnings) {
            let items = lowerText.split(separator: ":").map(String.init)
            // overlayfs stacks at most 500 lower layers.
            guard items.count < 500 else { return fail("\(layerDirectory)/lower lists \(items.count) layers, over overlayfs's 500") }
            for item in items {
                // "l/<short>": overlay2/l/<short> -> ../<layer id>/diff
                guard item.hasPrefix("l/"), ProfilePaths.isPlainName(String(item.dropFirst(2))) else {
                    warnings.append("\(layerDirectory)/lower: entry \(item) is not l/<short id>; skipped")
                    continue
                }
                guard let path = ProfilePaths.canonical("\(layersDirectory)/\(item)", in: fs, warnings: &warnings), path.hasPrefix(layersDirectory + "/") else {
                    warnings.append("\(layerDirectory)/lower: \(layersDirectory)/\(item) does not lead to a layer; skipped")
                    continue
                }
                let id = path.dropFirst(layersDirectory.count + 1).split(separator: "/").first.map(String.init) ?? ""
                if id.hasSuffix("-init") { continue }
                lower.append(path)
            }
        }
        var layers: [Layer] = []
        for dir in lower {
            guard let inode = ProfilePaths.directory(dir, in: fs, followLast: true, warnings: &warnings) else {
                return fail("hostapp layer \(dir) is not a directory")
            }
            layers.append(Layer(reader: fs, inode: inode))
        }
        let merged: NamespaceFileSystem
        do {
            merged = try NamespaceFileSystem(overlayOf: layers, name: "\(fs.sourceName) hostapp \(container)")
        } catch {
            return fail("the hostapp layers cannot be merged (\(FWError(error).message))")
        }
        let declared = "balenaOS hostapp container \(container) (\(how); \(mountIDFile))"
        let mounts = [
            PlannedMount(where: "/", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "", source: .other(root.reason)),
            PlannedMount(where: "/", kind: .overlay, fstype: "overlay", options: "ro", lower: lower, source: .other(declared)),
            PlannedMount(where: "/mnt/sysroot/active", kind: .partition, partition: root.partition, fstype: root.filesystem, options: "",
                         source: .other("balenaOS: the physical root partition after pivot_root into the hostapp")),
        ]
        return (BootedRoot(mounts: mounts, config: merged), warnings)
    }

    /// Words of a unit's `ExecStart=` (its prefix characters `-@:+!` dropped).
    static func execWords(_ unit: UnitFile) -> [String] {
        var words = unit.list("Service", "ExecStart")
        if let first = words.first {
            words[0] = String(first.drop { "-@:+!".contains($0) })
        }
        return words
    }

    /// The value of `--name value` or `--name=value` in command words.
    static func argument(_ name: String, in words: [String]) -> String? {
        for (i, w) in words.enumerated() {
            if w == name, i + 1 < words.count { return words[i + 1] }
            if w.hasPrefix(name + "=") { return String(w.dropFirst(name.count + 1)) }
        }
        return nil
    }

    /// Mounts made by enabled services: `resin-partition-mounter --mount <label>` (at
    /// /mnt/<label without resin-/balena->) and `bindmount --target <path> --bind-root <dir>`.
    static func serviceCandidates(loader: UnitLoader, enabled: Set<String>, partitions: [PlanPartition])
        -> (candidates: [Planner.Candidate], skipped: [SkippedMount]) {
        var candidates: [Planner.Candidate] = []
        var skipped: [SkippedMount] = []
        let labels = Set(partitions.compactMap(\.label))
        for name in loader.allUnitNames(suffix: ".service") {
            guard case .unit(let unit) = loader.load(name) else { continue }
            let words = execWords(unit)
            guard let program = words.first?.split(separator: "/").last else { continue }
            if program == "resin-partition-mounter", let label = argument("--mount", in: words) {
                var stem = label
                for prefix in ["resin-", "balena-"] where label.hasPrefix(prefix) { stem = String(label.dropFirst(prefix.count)) }
                guard ProfilePaths.isPlainName(stem) else { continue }
                let where_ = "/mnt/" + stem
                // Labels may be resin-* or balena-* whichever the unit names.
                let onDisk = [label, "resin-" + stem, "balena-" + stem].first { labels.contains($0) } ?? label
                guard enabled.contains(name) else {
                    skipped.append(SkippedMount(where: where_, reason: "unit not enabled", declaredBy: unit.path))
                    continue
                }
                candidates.append(Planner.Candidate(where: where_, what: "LABEL=" + onDisk, type: "auto", options: [],
                                                    source: .unit(file: unit.path), rank: 1, noauto: false))
            } else if program == "bindmount", let target = argument("--target", in: words), let base = argument("--bind-root", in: words) {
                guard target.hasPrefix("/"), base.hasPrefix("/") else { continue }
                guard enabled.contains(name) else {
                    skipped.append(SkippedMount(where: Planner.normalise(target), reason: "unit not enabled", declaredBy: unit.path))
                    continue
                }
                candidates.append(Planner.Candidate(where: target, what: Planner.normalise(base + "/" + target), type: "none",
                                                    options: ["bind"], source: .unit(file: unit.path), rank: 1, noauto: false))
            }
        }
        return (candidates, skipped)
    }
}
