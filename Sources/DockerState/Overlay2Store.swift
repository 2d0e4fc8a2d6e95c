import Assembly
import DiskImage
import FileSystems
import Foundation

/// Docker's graph driver store: `image/overlay2/` (layerdb, imagedb, repositories.json) and the
/// layer directories `overlay2/<cache-id>/diff` with their `l/` links and `lower` files.
struct Overlay2Store: ImageStore {
    let root: DataRoot

    func inventory(countMarkers: Bool) -> StoreInventory {
        var result = StoreInventory()
        guard root.driver == "overlay2" else { return result }   // the store's folders are not there
        let layers = root.layerRecords()
        result.layers = layers.count
        root.checkOverlay2Links()
        result.images = root.imageInventory(layers: layers)
        result.containers = root.containerInventory(images: Set(result.images.map(\.id))) { info, id in
            root.checkLayerMount(&info, id: id, layers: layers)
        }
        if countMarkers { (result.whiteouts, result.opaque) = root.countOverlayMarkers() }
        return result
    }

    /// The diff directories of an image, top first, from its rootfs.diff_ids chain.
    func layers(ofImage image: ImageInfo, reference: String, limits: LayerLimits) throws -> [Layer] {
        let records = root.layerRecords()
        var layers: [Layer] = []
        for chain in image.chainIDs.reversed() {
            guard let cache = records[chain]?.cacheID, let layer = root.layerDiff(cache, for: "layerdb \(chain)") else {
                throw FWError(.notFound, "layer \(chain) of image \(image.id) is missing", path: root.path)
            }
            layers.append(layer)
        }
        return layers
    }

    /// A container's layers, top first: its rw layer, its -init layer, its image's layers (the
    /// layerdb parent chain of its mount).
    func layers(ofContainer container: ContainerInfo) throws -> [Layer] {
        let mounts = "\(DataRoot.layerdb)/mounts/\(container.id)"
        guard let mountID = root.text("\(mounts)/mount-id"), let rw = root.layerDiff(mountID, for: mounts) else {
            throw FWError(.notFound, "the rw layer of container \(container.name) is missing", path: root.path)
        }
        let initID = root.text("\(mounts)/init-id") ?? mountID + "-init"
        var layers = [rw]
        if let initLayer = root.layerDiff(initID, for: mounts) { layers.append(initLayer) }
        let records = root.layerRecords()
        var parent = root.text("\(mounts)/parent").flatMap { $0.isEmpty ? nil : $0 }
        var seen = Set<String>()
        while let chain = parent {
            guard seen.insert(chain).inserted else {
                throw FWError(.corrupt, "the layer chain of container \(container.name) loops", path: root.path)
            }
            guard seen.count <= DataRoot.maximumLayers else {
                throw FWError(.limitExceeded, "the layer chain of container \(container.name) is longer than \(DataRoot.maximumLayers) layers", path: root.path)
            }
            guard let record = records[chain], let cache = record.cacheID, let layer = root.layerDiff(cache, for: "layerdb \(chain)") else {
                throw FWError(.notFound, "layer \(chain) of container \(container.name) is missing", path: root.path)
            }
            layers.append(layer)
            parent = record.parent
        }
        return layers
    }
}

/// A layerdb entry: image/overlay2/layerdb/sha256/<chain id>.
struct LayerRecord {
    var chainID: String
    var diffID: String?
    var cacheID: String?
    var parent: String?
    var size: UInt64?
}

extension DataRoot {
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
                guard seen.insert(parent).inserted else {
                    problem("\(Self.layerdb)/sha256/\(record.chainID.dropFirst(7))/parent", "the parent chain loops")
                    break
                }
                guard seen.count <= Self.maximumLayers else {
                    problem("\(Self.layerdb)/sha256/\(record.chainID.dropFirst(7))/parent", "the parent chain is longer than \(Self.maximumLayers) layers")
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
            guard parts.count == 3, parts[0] == "..", parts[2] == "diff", NamespacePath.Component(parts[1]) != nil else {
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
            guard item.hasPrefix("l/"), NamespacePath.Component(String(item.dropFirst(2))) != nil else {
                problem("\(base)/lower", "entry \(item.debugDescription) is not l/<id>; not followed")
                return nil
            }
            let short = String(item.dropFirst(2))
            guard let e = entry("overlay2/l/\(short)"), e.metadata.type == .symlink, let raw = e.metadata.symlinkTarget else {
                problem("\(base)/lower", "names \(item), which does not exist")
                return nil
            }
            let parts = String(decoding: raw, as: UTF8.self).split(separator: "/").map(String.init)
            guard parts.count == 3, parts[0] == "..", parts[2] == "diff", NamespacePath.Component(parts[1]) != nil else { return nil }
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

    // MARK: Images

    static let imagedb = "image/overlay2/imagedb/content/sha256"

    /// repositories.json: image id -> tags.
    func repositoryTags() -> [String: [String]] {
        let file = "image/overlay2/repositories.json"
        guard entry(file) != nil, let json = json(file, as: DockerJSON.Repositories.self) else { return [:] }
        guard let repos = json.repositories else {
            problem(file, "has no Repositories object")
            return [:]
        }
        var tags: [String: [String]] = [:]
        for (ref, id) in repos.values.flatMap({ $0 }) {
            tags[id, default: []].append(ref)
        }
        return tags.mapValues { $0.sorted() }
    }

    /// Docker's images: `imagedb/content/sha256/<id>` configs, their chain ids checked against layerdb.
    func imageInventory(layers: [String: LayerRecord]) -> [ImageInfo] {
        let tags = repositoryTags()
        var images: [ImageInfo] = []
        for hex in names(Self.imagedb) {
            let id = "sha256:" + hex
            guard let config = json("\(Self.imagedb)/\(hex)", as: OCI.ImageConfig.self) else { continue }
            let diffIDs = config.diffIDs
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
            images.append(ImageInfo(id: id, tags: tags[id] ?? [], created: config.created, layers: diffIDs.count,
                                    size: size, cmd: config.config?.cmd, entrypoint: config.config?.entrypoint,
                                    diffIDs: diffIDs, chainIDs: chains))
        }
        let known = Set(images.map(\.id))
        for (id, refs) in tags.sorted(by: { $0.key < $1.key }) where !known.contains(id) {
            problem("image/overlay2/repositories.json", "\(refs.joined(separator: ", ")) points at image \(id), which does not exist")
        }
        return images
    }

    /// A container's `layerdb/mounts/<id>/{mount-id, init-id, parent}`: its layers exist; `mountID` set.
    func checkLayerMount(_ info: inout ContainerInfo, id: String, layers: [String: LayerRecord]) {
        let mounts = "\(Self.layerdb)/mounts/\(id)"
        let name = info.name
        guard directory(mounts) != nil else {
            problem(mounts, "container \(name) has no layer mount record")
            return
        }
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
}
