import Assembly
import DiskImage
import FileSystems

extension DataRoot {
    /// The diff directories of an image, top first, from its rootfs.diff_ids chain.
    public func imageLayers(_ reference: String) throws -> (id: String, layers: [Layer]) {
        let report = inspect(countMarkers: false)
        let images = report.images
        let match = images.first { $0.id == reference || $0.id == "sha256:" + reference || $0.tags.contains(reference) }
            ?? images.first { ref in
                let short = reference.hasPrefix("sha256:") ? String(reference.dropFirst(7)) : reference
                return short.count >= 4 && ref.id.dropFirst(7).hasPrefix(short)
            }
        guard let image = match else {
            throw FWError(.notFound, "no image \(reference) in the data-root", path: path)
        }
        let records = layerRecords()
        var layers: [Layer] = []
        for chain in image.chainIDs.reversed() {
            guard let cache = records[chain]?.cacheID, let layer = layerDiff(cache, for: "layerdb \(chain)") else {
                throw FWError(.notFound, "layer \(chain) of image \(image.id) is missing", path: path)
            }
            layers.append(layer)
        }
        return (image.id, layers)
    }

    /// The layers of a container, top first: its rw layer, its -init layer, its image's layers
    /// (the layerdb parent chain of its mount).
    public func containerLayers(_ reference: String) throws -> (id: String, layers: [Layer]) {
        let containers = inspect(countMarkers: false).containers
        let match = containers.first { $0.id == reference || $0.name == reference || $0.name == "/" + reference }
            ?? containers.first { reference.count >= 4 && $0.id.hasPrefix(reference) }
        guard let container = match else {
            throw FWError(.notFound, "no container \(reference) in the data-root", path: path)
        }
        let mounts = "\(Self.layerdb)/mounts/\(container.id)"
        guard let mountID = text("\(mounts)/mount-id"), let rw = layerDiff(mountID, for: mounts) else {
            throw FWError(.notFound, "the rw layer of container \(container.name) is missing", path: path)
        }
        let initID = text("\(mounts)/init-id") ?? mountID + "-init"
        var layers = [rw]
        if let initLayer = layerDiff(initID, for: mounts) { layers.append(initLayer) }
        let records = layerRecords()
        var parent = text("\(mounts)/parent").flatMap { $0.isEmpty ? nil : $0 }
        var seen = Set<String>()
        while let chain = parent {
            guard seen.insert(chain).inserted, seen.count <= Self.maximumLayers else {
                throw FWError(.corrupt, "the layer chain of container \(container.name) loops", path: path)
            }
            guard let record = records[chain], let cache = record.cacheID, let layer = layerDiff(cache, for: "layerdb \(chain)") else {
                throw FWError(.notFound, "layer \(chain) of container \(container.name) is missing", path: path)
            }
            layers.append(layer)
            parent = record.parent
        }
        return (container.id, layers)
    }
}
