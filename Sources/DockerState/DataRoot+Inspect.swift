import Assembly
import DiskImage
import FileSystems
import Foundation

/// A layerdb entry: image/overlay2/layerdb/sha256/<chain id>.
struct LayerRecord {
    var chainID: String
    var diffID: String?
    var cacheID: String?
    var parent: String?
    var size: UInt64?
}

extension DataRoot {
    /// Integrity check and inventory (never throws: everything wrong is a problem).
    /// `countMarkers: false` skips the walk over every layer diff counting whiteouts and opaque
    /// directories (exports only need the inventory).
    public func inspect(foundVia: [String] = [], countMarkers: Bool = true) -> DataRootReport {
        problems = []
        let store = self.store
        let driver = self.driver
        var images: [ImageInfo] = []
        var containers: [ContainerInfo] = []
        var volumes: [VolumeInfo] = []
        var whiteouts = 0, opaque = 0, layerCount = 0
        var namespaces: [NamespaceInfo]?
        if store == "podman" {
            let inventory = podmanInventory(countMarkers: countMarkers)
            (images, containers, layerCount, whiteouts, opaque) = (inventory.images, inventory.containers, inventory.layers,
                                                                   inventory.whiteouts, inventory.opaque)
        } else if store == "containerd", let croot = containerdRoot {
            let inventory = containerdInventory(croot, countMarkers: countMarkers)
            (images, containers, namespaces, layerCount) = (inventory.images, inventory.containers, inventory.namespaces, inventory.layers)
            (whiteouts, opaque) = (inventory.whiteouts, inventory.opaque)
        } else if driver == "overlay2" {
            let layers = layerRecords()
            layerCount = layers.count
            checkOverlay2Links()
            images = imageInventory(layers: layers)
            containers = containerInventory(layers: layers, images: Set(images.map(\.id)))
            if countMarkers { (whiteouts, opaque) = countOverlayMarkers() }
        }
        volumes = volumeInventory()
        let used = Set(containers.map(\.image))
        let summary = Summary(images: images.count, containers: containers.count,
                              running: containers.filter(\.running).count,
                              paused: containers.filter(\.paused).count,
                              restarting: containers.filter(\.restarting).count,
                              dead: containers.filter(\.dead).count,
                              exitedNonzero: containers.filter { !$0.running && $0.exitCode != 0 }.count,
                              imagesWithoutContainers: images.map(\.id).filter { !used.contains($0) })
        return DataRootReport(path: path, foundVia: foundVia, driver: driver, engine: engine, images: images,
                              containers: containers, volumes: volumes,
                              integrity: Integrity(ok: problems.isEmpty, problems: problems, whiteouts: whiteouts,
                                                   opaqueDirectories: opaque, layers: layerCount),
                              summary: summary, store: store, containerdRoot: store == "containerd" ? containerdRoot?.path : nil,
                              namespaces: namespaces)
    }

    // MARK: Layers

    static let layerdb = "image/overlay2/layerdb"

    func layerRecords() -> [String: LayerRecord] {
        var result: [String: LayerRecord] = [:]
        for name in names("\(Self.layerdb)/sha256") {
            let base = "\(Self.layerdb)/sha256/\(name)"
            let chain = "sha256:" + name
            guard directory(base) != nil else {
                problem(base, "layerdb entry is not a directory; ignored")
                continue
            }
            var record = LayerRecord(chainID: chain)
            record.diffID = text("\(base)/diff")
            record.cacheID = text("\(base)/cache-id")
            record.parent = text("\(base)/parent").flatMap { $0.isEmpty ? nil : $0 }
            record.size = text("\(base)/size").flatMap { UInt64($0) }
            if let cache = record.cacheID {
                _ = layerDiff(cache, for: base)
            } else {
                problem(base, "layer has no cache-id")
            }
            result[chain] = record
        }
        // Parent chains must exist and end (no loop).
        for record in result.values.sorted(by: { $0.chainID < $1.chainID }) {
            var seen: Set<String> = [record.chainID]
            var current = record
            while let parent = current.parent {
                guard let next = result[parent] else {
                    problem("\(Self.layerdb)/sha256/\(record.chainID.dropFirst(7))/parent", "names layer \(parent), which is not in layerdb")
                    break
                }
                guard seen.insert(parent).inserted, seen.count <= Self.maximumLayers else {
                    problem("\(Self.layerdb)/sha256/\(record.chainID.dropFirst(7))/parent", "the parent chain loops")
                    break
                }
                current = next
            }
        }
        return result
    }

    /// overlay2/l links and each layer's `lower` and `link` files.
    func checkOverlay2Links() {
        // l/<short> -> ../<cache-id>/diff
        var linkTargets: [String: String] = [:]
        for short in names("overlay2/l") {
            guard let e = entry("overlay2/l/\(short)") else { continue }
            guard e.metadata.type == .symlink, let raw = e.metadata.symlinkTarget else {
                problem("overlay2/l/\(short)", "is not a symlink")
                continue
            }
            let target = String(decoding: raw, as: UTF8.self)
            let parts = target.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            guard parts.count == 3, parts[0] == "..", parts[2] == "diff", Self.isSafeID(parts[1]) else {
                problem("overlay2/l/\(short)", "points to \(target), outside the layer directories; not followed")
                continue
            }
            if entry("overlay2/\(parts[1])")?.metadata.type == .symlink {
                problem("overlay2/\(parts[1])", "layer directory is a symlink; not followed")
                continue
            }
            guard directory("overlay2/\(parts[1])/diff") != nil else {
                problem("overlay2/l/\(short)", "dangling link to \(target): that diff directory does not exist")
                continue
            }
            linkTargets[short] = parts[1]
        }
        for layer in names("overlay2") where layer != "l" {
            let base = "overlay2/\(layer)"
            guard let e = entry(base) else { continue }
            if e.metadata.type == .symlink {
                problem(base, "layer directory is a symlink to \(String(decoding: e.metadata.symlinkTarget ?? [], as: UTF8.self)); not followed")
                continue
            }
            guard e.metadata.type == .directory else { continue }
            if let link = text("\(base)/link"), linkTargets[link] != layer {
                problem("\(base)/link", "its short link l/\(link) is missing or points elsewhere")
            }
            _ = lowerChain(of: layer)
        }
    }

    /// The cache ids a layer's `lower` file names (nearest parent first), checked: each
    /// "l/<short>" must exist and point at an existing diff; no layer may appear twice or be the
    /// layer itself (a loop).
    func lowerChain(of layer: String) -> [String]? {
        let base = "overlay2/\(layer)"
        guard let lower = text("\(base)/lower") else { return [] }
        var result: [String] = []
        var seen: Set<String> = [layer]
        for item in lower.split(separator: ":", omittingEmptySubsequences: false).map(String.init) {
            guard item.hasPrefix("l/"), Self.isSafeID(String(item.dropFirst(2))) else {
                problem("\(base)/lower", "entry \(item.debugDescription) is not l/<id>; not followed")
                return nil
            }
            let short = String(item.dropFirst(2))
            guard let e = entry("overlay2/l/\(short)"), e.metadata.type == .symlink, let raw = e.metadata.symlinkTarget else {
                problem("\(base)/lower", "names \(item), which does not exist")
                return nil
            }
            let parts = String(decoding: raw, as: UTF8.self).split(separator: "/").map(String.init)
            guard parts.count == 3, parts[0] == "..", parts[2] == "diff", Self.isSafeID(parts[1]) else { return nil }
            guard directory("overlay2/\(parts[1])/diff") != nil else {
                problem("\(base)/lower", "names \(item), a dangling link")
                return nil
            }
            guard seen.insert(parts[1]).inserted else {
                problem("\(base)/lower", "the lower chain loops: layer \(parts[1]) appears twice")
                return nil
            }
            result.append(parts[1])
        }
        return result
    }

    /// Whiteouts and opaque directories in every layer diff (bounded walk).
    func countOverlayMarkers() -> (Int, Int) {
        var diffs: [(inode: UInt64, path: String)] = []
        for layer in names("overlay2") where layer != "l" {
            guard entry("overlay2/\(layer)")?.metadata.type == .directory, let diff = directory("overlay2/\(layer)/diff") else { continue }
            diffs.append((diff, "overlay2/\(layer)/diff"))
        }
        return countOverlayMarkers(in: diffs)
    }

    /// Whiteouts and opaque directories below each of `directories` (bounded walk).
    func countOverlayMarkers(in directories: [(inode: UInt64, path: String)]) -> (Int, Int) {
        var whiteouts = 0, opaque = 0
        for diff in directories {
            forEachEntry(below: diff.inode, at: diff.path) { m in
                if OverlayMerge.isWhiteout(m) { whiteouts += 1 }
                if m.type == .directory, OverlayMerge.isOpaque(m) { opaque += 1 }
            }
        }
        return (whiteouts, opaque)
    }

    /// Calls `visit` with the metadata of every entry below `directory` (at `relative`), at most
    /// `maximumDepth` directories deep. A directory or entry that cannot be read is a problem
    /// and is left out.
    func forEachEntry(below directory: UInt64, at relative: String, _ visit: (Metadata) -> Void) {
        var stack: [(UInt64, Int, String)] = [(directory, 0, relative)]
        while let (dir, depth, dirPath) = stack.popLast() {
            let entries: [DirectoryEntry]
            do {
                entries = try reader.directoryEntries(of: dir)
            } catch {
                problem(dirPath, "cannot read the directory: \(FWError(error).description)")
                continue
            }
            for e in entries where e.name != [0x2E] && e.name != [0x2E, 0x2E] {
                let entryPath = "\(dirPath)/\(String(decoding: e.name, as: UTF8.self))"
                let m: Metadata
                do {
                    m = try reader.metadata(of: e.inode)
                } catch {
                    problem(entryPath, "cannot read: \(FWError(error).description)")
                    continue
                }
                visit(m)
                if m.type == .directory, depth < Self.maximumDepth { stack.append((e.inode, depth + 1, entryPath)) }
            }
        }
    }

    // MARK: Images

    static let imagedb = "image/overlay2/imagedb/content/sha256"

    /// repositories.json: image id -> tags.
    func repositoryTags() -> [String: [String]] {
        guard entry("image/overlay2/repositories.json") != nil, let json = json("image/overlay2/repositories.json") else { return [:] }
        var tags: [String: [String]] = [:]
        guard let repos = json["Repositories"] as? [String: Any] else {
            problem("image/overlay2/repositories.json", "has no Repositories object")
            return [:]
        }
        for (_, value) in repos {
            guard let refs = value as? [String: Any] else { continue }
            for (ref, id) in refs {
                guard let id = id as? String else { continue }
                tags[id, default: []].append(ref)
            }
        }
        return tags.mapValues { $0.sorted() }
    }

    func imageConfig(_ id: String) -> [String: Any]? {
        let hex = id.hasPrefix("sha256:") ? String(id.dropFirst(7)) : id
        guard Self.isSafeID(hex) else { return nil }
        return json("\(Self.imagedb)/\(hex)")
    }

    func imageInventory(layers: [String: LayerRecord]) -> [ImageInfo] {
        let tags = repositoryTags()
        var images: [ImageInfo] = []
        for hex in names(Self.imagedb) {
            let id = "sha256:" + hex
            guard let config = json("\(Self.imagedb)/\(hex)") else { continue }
            let rootfs = config["rootfs"] as? [String: Any]
            let diffIDs = (rootfs?["diff_ids"] as? [Any])?.compactMap { $0 as? String } ?? []
            let chains = dockerChainIDs(diffIDs)
            var size: UInt64? = 0
            for (i, chain) in chains.enumerated() {
                guard let record = layers[chain] else {
                    problem("\(Self.imagedb)/\(hex)", "layer \(i + 1) (diff \(diffIDs[i]), chain \(chain)) is not in layerdb")
                    size = nil
                    continue
                }
                if let d = record.diffID, d != diffIDs[i] {
                    problem("\(Self.layerdb)/sha256/\(chain.dropFirst(7))/diff", "is \(d), the image says \(diffIDs[i])")
                }
                if let s = record.size, let total = size { size = total.addingReportingOverflow(s).overflow ? nil : total + s } else { size = nil }
            }
            let inner = config["config"] as? [String: Any]
            images.append(ImageInfo(id: id, tags: tags[id] ?? [], created: config["created"] as? String, layers: diffIDs.count,
                                    size: size, cmd: Self.strings(inner?["Cmd"]), entrypoint: Self.strings(inner?["Entrypoint"]),
                                    diffIDs: diffIDs, chainIDs: chains))
        }
        let known = Set(images.map(\.id))
        for (id, refs) in tags.sorted(by: { $0.key < $1.key }) where !known.contains(id) {
            problem("image/overlay2/repositories.json", "\(refs.joined(separator: ", ")) points at image \(id), which does not exist")
        }
        return images
    }

    static func strings(_ value: Any?) -> [String]? {
        (value as? [Any])?.compactMap { $0 as? String }
    }

    // MARK: Containers

    func containerInventory(layers: [String: LayerRecord], images: Set<String>, layerdb: Bool = true) -> [ContainerInfo] {
        var result: [ContainerInfo] = []
        for id in names("containers") {
            let base = "containers/\(id)"
            guard let config = json("\(base)/config.v2.json") else {
                if entry("\(base)/config.v2.json") == nil { problem(base, "container has no config.v2.json") }
                continue
            }
            let inner = config["Config"] as? [String: Any]
            let state = config["State"] as? [String: Any] ?? [:]
            let host = entry("\(base)/hostconfig.json") != nil ? json("\(base)/hostconfig.json") : nil
            let restart = host?["RestartPolicy"] as? [String: Any]
            func flag(_ k: String) -> Bool { state[k] as? Bool ?? false }
            let running = flag("Running"), paused = flag("Paused"), restarting = flag("Restarting"), dead = flag("Dead")
            let stateName = restarting ? "restarting" : paused ? "paused" : running ? "running" : dead ? "dead"
                : ((state["StartedAt"] as? String).map { $0.hasPrefix("0001-") } ?? true ? "created" : "exited")
            let image = config["Image"] as? String ?? ""
            var name = config["Name"] as? String ?? id
            if name.hasPrefix("/") { name.removeFirst() }
            var info = ContainerInfo(id: config["ID"] as? String ?? id, name: name, image: image,
                                     imageTag: inner?["Image"] as? String, cmd: Self.strings(inner?["Cmd"]),
                                     entrypoint: Self.strings(inner?["Entrypoint"]), path: config["Path"] as? String,
                                     args: Self.strings(config["Args"]),
                                     labels: (inner?["Labels"] as? [String: Any])?.compactMapValues { $0 as? String } ?? [:],
                                     state: stateName, running: running, paused: paused, restarting: restarting, dead: dead,
                                     exitCode: (state["ExitCode"] as? NSNumber)?.intValue ?? 0, oomKilled: flag("OOMKilled"),
                                     startedAt: state["StartedAt"] as? String, finishedAt: state["FinishedAt"] as? String,
                                     restartPolicy: restart?["Name"] as? String,
                                     restartCount: (config["RestartCount"] as? NSNumber)?.intValue ?? 0, mountID: nil)
            if !image.isEmpty, !images.contains(image) {
                problem("\(base)/config.v2.json", "container \(name) uses image \(image), which does not exist")
            }
            // layerdb/mounts/<id>/{mount-id, init-id, parent}
            let mounts = "\(Self.layerdb)/mounts/\(id)"
            if !layerdb {
                // the containerd store: snapshots are checked by the caller
            } else if directory(mounts) == nil {
                problem(mounts, "container \(name) has no layer mount record")
            } else {
                if let mountID = text("\(mounts)/mount-id") {
                    info.mountID = mountID
                    _ = layerDiff(mountID, for: "\(mounts)/mount-id")
                    _ = layerDiff(text("\(mounts)/init-id") ?? mountID + "-init", for: "\(mounts)/init-id")
                } else {
                    problem(mounts, "container \(name) has no mount-id")
                }
                if let parent = text("\(mounts)/parent"), !parent.isEmpty, layers[parent] == nil {
                    problem("\(mounts)/parent", "names layer \(parent), which is not in layerdb")
                }
            }
            result.append(info)
        }
        return result
    }

    // MARK: Volumes

    func volumeInventory() -> [VolumeInfo] {
        var result: [VolumeInfo] = []
        for name in names("volumes") {
            guard let data = directory("volumes/\(name)/_data") else { continue }
            var size: UInt64 = 0, files = 0
            forEachEntry(below: data, at: "volumes/\(name)/_data") { m in
                if m.type == .regular {
                    files += 1
                    size = size.addingReportingOverflow(m.size).partialValue
                }
            }
            result.append(VolumeInfo(name: name, size: size, files: files))
        }
        return result
    }
}
