import Assembly
import DiskFormats
import DiskImage
import FileSystemTar
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
        if store == "podman" {
            let records = jsonArray("overlay-images/images.json") ?? []
            guard let top = records.first(where: { "sha256:" + ($0["id"] as? String ?? "") == image.id })?["layer"] as? String else {
                throw FWError(.notFound, "image \(image.id) has no layer", path: path)
            }
            return (image.id, try podmanLayerDiffs(top, what: "image \(reference)"))
        }
        if store == "containerd" {
            guard let top = image.chainIDs.last else {
                throw FWError(.notFound, "image \(image.id) has no layers (its config is missing)", path: path)
            }
            do {
                return (image.id, try containerdLayers(top, what: "image \(reference)"))
            } catch {
                // The snapshots are gone: the content store's layer blobs, if every one is there.
                guard let layers = try? blobLayers(image.id, what: "image \(reference)") else { throw error }   // the fallback failing leaves the snapshots' error as the one to report
                return (image.id, layers)
            }
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
        if match == nil, store == "containerd", let croot = containerdRoot {
            // containerd alone (k3s): a containerd container record, by id; its snapshot key.
            let store = ContainerdStore(dir: croot)
            store.load()
            for ns in store.namespaces where dockerNamespace == nil || ns.name == dockerNamespace {
                if let record = ns.containers.first(where: { $0.id == reference }) {
                    return (record.id, try containerdLayers(record.snapshotKey ?? record.id, what: "container \(reference)"))
                }
            }
        }
        guard let container = match else {
            throw FWError(.notFound, "no container \(reference) in the data-root", path: path)
        }
        if store == "containerd" {
            return (container.id, try containerdLayers(container.id, what: "container \(container.name)"))
        }
        if store == "podman" {
            guard let layer = container.mountID else { throw FWError(.notFound, "container \(container.name) has no layer", path: path) }
            return (container.id, try podmanLayerDiffs(layer, what: "container \(container.name)"))
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

extension DataRoot {
    /// The snapshot directories (`snapshots/<id>/fs`) of a snapshot key and its parents in
    /// Docker's namespace (or the first namespace that has it), top first.
    func containerdLayers(_ key: String, what: String) throws -> [Layer] {
        guard let croot = containerdRoot else { throw FWError(.notFound, "no containerd root for \(what)", path: path) }
        let store = ContainerdStore(dir: croot)
        store.load()
        let candidates = store.namespaces.filter { dockerNamespace == nil || $0.name == dockerNamespace }
        guard let ns = candidates.first(where: { $0.snapshots["overlayfs"]?[key] != nil }) else {
            throw FWError(.notFound, "\(what): snapshot \(key) does not exist", path: croot.path)
        }
        let chain = store.chain(key, namespace: ns, snapshotter: "overlayfs")
        if let problem = chain.problem { throw FWError(.notFound, "\(what): \(problem)", path: croot.path) }
        return try chain.dirs.map { dir in
            guard let inode = croot.directory(dir) else { throw FWError(.notFound, "\(what): \(dir) is missing", path: croot.path) }
            return Layer(reader: croot.reader, inode: inode)
        }
    }
}

extension DataRoot {
    /// An image's layers from the content store (tar, tar+gzip, tar+zstd blobs; decompressed once
    /// into unlinked temporary files), top first, each read as a tar with OCI whiteouts.
    func blobLayers(_ target: String, what: String) throws -> [Layer] {
        guard let croot = containerdRoot else { throw FWError(.notFound, "no containerd root for \(what)", path: path) }
        let store = ContainerdStore(dir: croot)
        guard let blobs = store.layerBlobs(target) else {
            throw FWError(.notFound, "\(what): its manifest is not in the content store", path: croot.path)
        }
        return try blobs.reversed().map { digest in
            guard let relative = store.blobPath(digest), let e = croot.entry(relative), e.metadata.type == .regular else {
                throw FWError(.notFound, "\(what): layer blob \(digest) is missing", path: croot.path)
            }
            let name = "\(croot.path)/\(relative)"
            let raw = try FileByteSource(reader: croot.reader, inode: e.inode, name: name)
            let tar = try TarReader(source: try decompressedStream(raw), name: name, ociWhiteouts: true)
            return Layer(reader: tar, inode: tar.rootInode)
        }
    }
}
