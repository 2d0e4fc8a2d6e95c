import Assembly
import DiskFormats
import DiskImage
import FileSystemTar
import FileSystems
import Foundation

/// Docker 29's containerd image store (images and snapshots in the containerd root, containers
/// in the data-root's `containers/`), or containerd alone (k3s, a system containerd).
struct ContainerdImageStore: ImageStore {
    let root: DataRoot
    /// The containerd root (`<data-root>/containerd/daemon`, `/var/lib/containerd`, or the data-root itself).
    let containerd: DataRoot

    func inventory(countMarkers: Bool) -> StoreInventory {
        root.containerdInventory(containerd, countMarkers: countMarkers)
    }

    /// The committed snapshots of the image's chain ids; when they are gone, its layer blobs
    /// (each verified, decompressed within `limits`).
    func layers(ofImage image: ImageInfo, reference: String, limits: LayerLimits) throws -> [Layer] {
        guard let top = image.chainIDs.last else {
            throw FWError(.notFound, "image \(image.id) has no layers (its config is missing)", path: root.path)
        }
        do {
            return try snapshotLayers(top, what: "image \(reference)")
        } catch {
            // The snapshots are gone: the content store's layer blobs. A blob or manifest missing
            // leaves the snapshots' error as the one to report; a blob that is there but fails its
            // checks (digest, diff id, truncated, too large, no space to decompress) is the error.
            do {
                return try blobLayers(image, what: "image \(reference)", limits: limits)
            } catch let blobError as FWError where blobError.code == .notFound {
                throw error
            }
        }
    }

    /// The snapshot chain `<id>`, `<id>-init`, the image's chain ids.
    func layers(ofContainer container: ContainerInfo) throws -> [Layer] {
        try snapshotLayers(container.id, what: "container \(container.name)")
    }

    /// containerd alone (k3s): a containerd container record, by id; its snapshot key.
    func unlistedContainerLayers(_ reference: String) throws -> (id: String, layers: [Layer])? {
        let store = ContainerdStore(dir: containerd)
        store.load()
        for ns in store.namespaces where root.dockerNamespace == nil || ns.name == root.dockerNamespace {
            if let record = ns.containers.first(where: { $0.id == reference }) {
                return (record.id, try snapshotLayers(record.snapshotKey ?? record.id, what: "container \(reference)"))
            }
        }
        return nil
    }

    /// The snapshot directories (`snapshots/<id>/fs`) of a snapshot key and its parents in
    /// Docker's namespace (or the first namespace that has it), top first.
    func snapshotLayers(_ key: String, what: String) throws -> [Layer] {
        let croot = containerd
        let store = ContainerdStore(dir: croot)
        store.load()
        let candidates = store.namespaces.filter { root.dockerNamespace == nil || $0.name == root.dockerNamespace }
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

    /// An image's layers from the content store (tar, tar+gzip, tar+zstd blobs; decompressed once
    /// into unlinked temporary files), top first, each read as a tar with OCI whiteouts after
    /// `LayerBlob.verifiedTar` checked its digest, its diff id and its end.
    func blobLayers(_ image: ImageInfo, what: String, limits: LayerLimits) throws -> [Layer] {
        let croot = containerd
        let store = ContainerdStore(dir: croot, architecture: root.deviceArchitecture)
        guard let blobs = store.layerBlobs(image.id) else {
            throw FWError(.notFound, "\(what): its manifest is not in the content store", path: croot.path)
        }
        guard blobs.count == image.diffIDs.count else {
            throw FWError(.corrupt, "\(what): the manifest lists \(blobs.count) layers, the config \(image.diffIDs.count) diff ids; not exported",
                          path: croot.path)
        }
        var layers: [Layer] = []
        for (i, digest) in blobs.enumerated() {
            guard let relative = store.blobPath(digest), let e = croot.entry(relative), e.metadata.type == .regular else {
                throw FWError(.notFound, "\(what): layer blob \(digest) is missing", path: croot.path)
            }
            let name = "\(croot.path)/\(relative)"
            let raw = try FileByteSource(reader: croot.reader, inode: e.inode, name: name)
            let source = try LayerBlob.verifiedTar(raw, digest: digest, diffID: image.diffIDs[i], layer: "\(what): layer \(i + 1) (blob \(digest))",
                                                   place: name, limits: limits)
            let tar = try TarReader(source: source, name: name, ociWhiteouts: true)
            layers.append(Layer(reader: tar, inode: tar.rootInode))
        }
        return layers.reversed()
    }
}

extension DataRoot {
    /// The namespace whose images and containers are the data-root's: Docker's "moby"; for
    /// containerd alone every namespace is listed under `namespaces` and the images of all.
    var dockerNamespace: String? { containerdRoot === self ? nil : "moby" }

    /// Images (per target digest), containers (config.v2.json with their snapshot chains),
    /// namespaces, and the containerd integrity checks; problems land on this data-root.
    func containerdInventory(_ croot: DataRoot, countMarkers: Bool) -> StoreInventory {
        let separate = croot !== self   // containerd alone: the data-root is its own containerd root
        if separate { croot.problems = [] }
        let store = ContainerdStore(dir: croot, architecture: deviceArchitecture)
        store.load()
        var result = StoreInventory(namespaces: [])
        let snapshotter = "overlayfs"
        // Namespaces as ctr lists them, and the meta.db <-> snapshotter consistency.
        for ns in store.namespaces {
            var snapshots: [SnapshotInfo] = []
            for (name, keys) in ns.snapshots.sorted(by: { $0.key < $1.key }) {
                for s in keys.values.sorted(by: { $0.key < $1.key }) {
                    let backend = s.name.flatMap { store.backends[name]?[$0] }
                    snapshots.append(SnapshotInfo(snapshotter: name, key: s.key, parent: s.parent, kind: backend?.kind, id: backend?.id,
                                                  createdAt: s.createdAt))
                    let where_ = "\(ContainerdStore.metaDB) v1/\(ns.name)/snapshots/\(name)/\(s.key)"
                    if let parent = s.parent, keys[parent] == nil {
                        croot.problem(where_, "names parent snapshot \(parent), which does not exist")
                    }
                    if let backend, let id = backend.id {
                        if croot.directory("io.containerd.snapshotter.v1.\(name)/snapshots/\(id)/fs") == nil {
                            croot.problem(where_, "its directory io.containerd.snapshotter.v1.\(name)/snapshots/\(id)/fs is missing")
                        }
                        if let bp = backend.parent, store.backends[name]?[bp] == nil {
                            croot.problem("io.containerd.snapshotter.v1.\(name)/metadata.db", "snapshot \(backend.key) names parent \(bp), which does not exist")
                        }
                    } else {
                        croot.problem(where_, "has no record in the \(name) snapshotter's metadata.db")
                    }
                }
            }
            for blob in ns.content where !store.hasBlob(blob.digest) {
                croot.problem("\(ContainerdStore.content)/\(blob.digest.dropFirst(7))", "blob \(blob.digest) (\(ns.name)) is missing from the content store")
            }
            result.namespaces?.append(NamespaceInfo(
                name: ns.name,
                images: ns.images, snapshots: snapshots, content: ns.content,
                containers: ns.containers.map(\.id), leases: ns.leases))
            result.layers += snapshots.count
        }
        if countMarkers { _ = store.verifyBlobs() }
        // Images of Docker's namespace (or all), one per target digest.
        let listed = store.namespaces.filter { dockerNamespace == nil || $0.name == dockerNamespace }
        for ns in listed {
            var byDigest: [String: [String]] = [:]
            for image in ns.images {
                guard let digest = image.digest else {
                    croot.problem("\(ContainerdStore.metaDB) v1/\(ns.name)/images/\(image.name)", "has no target digest")
                    continue
                }
                byDigest[digest, default: []].append(image.name)
            }
            for (digest, names) in byDigest.sorted(by: { $0.key < $1.key }) {
                let media = ns.images.first { $0.digest == digest }?.mediaType
                var info = image(digest, names: names.sorted(), mediaType: media, namespace: ns, store: store, snapshotter: snapshotter)
                if dockerNamespace != nil {   // Docker's view of its records; containerd alone keeps containerd's names
                    (info.tags, info.repoDigests) = DockerImageNames.of(names: names, target: digest)
                }
                result.images.append(info)
            }
        }
        // Containers: Docker's config.v2.json, each with its snapshot chain (key = container id).
        if dockerNamespace != nil {
            let targets = Set(result.images.map(\.id))
            result.containers = containerInventory(images: targets) { _, _ in }   // snapshots are checked below
            let ns = store.namespaces.first { $0.name == dockerNamespace } ?? ContainerdStore.Namespace(name: dockerNamespace ?? "moby")
            for i in result.containers.indices {
                let c = result.containers[i]
                let chain = store.chain(c.id, namespace: ns, snapshotter: snapshotter)
                result.containers[i].snapshotChain = chain.keys
                if let p = chain.problem {
                    problem("containers/\(c.id)", "container \(c.name): \(p)")
                }
            }
        }
        if countMarkers {
            var dirs: [(inode: UInt64, path: String)] = []
            for id in Set(store.backends[snapshotter]?.values.compactMap(\.id) ?? []).sorted() {
                let fs = "io.containerd.snapshotter.v1.\(snapshotter)/snapshots/\(id)/fs"
                if let d = croot.directory(fs) { dirs.append((d, fs)) }
            }
            (result.whiteouts, result.opaque) = croot.countOverlayMarkers(in: dirs)
        }
        if separate { problems.append(contentsOf: croot.problems) }
        return result
    }

    /// One image: its target (an index resolved to the first manifest present for a real
    /// platform), config, layers; checks that each is present and each chain id is a committed
    /// snapshot. `tags` are the record names (containerd's, which problems name).
    func image(_ digest: String, names: [String], mediaType: String?, namespace ns: ContainerdStore.Namespace,
               store: ContainerdStore, snapshotter: String) -> ImageInfo {
        let croot = store.dir
        var info = ImageInfo(id: digest, tags: names, created: nil, layers: 0, size: nil, cmd: nil, entrypoint: nil, diffIDs: [], chainIDs: [])
        info.targetDigest = digest
        info.mediaType = mediaType
        let label = names.first ?? digest
        guard let target = store.jsonBlob(digest, as: OCI.Target.self) else {
            croot.problem(store.blobPath(digest) ?? digest, "the target \(digest) of image \(label) is missing from the content store")
            return info
        }
        guard let resolved = store.resolveManifest(digest, target) else {
            croot.problem(store.blobPath(digest) ?? digest, "index of image \(label) names no manifest present in the content store")
            return info
        }
        let manifestDigest = resolved.digest, manifest = resolved.manifest
        info.platform = resolved.platform
        if let fallback = resolved.fallback { croot.problem(store.blobPath(digest) ?? digest, "image \(label): \(fallback)") }
        // Sizes as the manifest states them (untrusted: a sum that overflows is unknown, not a trap).
        func adding(_ total: Int64?, _ more: Int64?) -> Int64? {
            guard let total else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(more ?? 0)
            return overflow ? nil : sum
        }
        var size = adding(resolved.size, Int64(exactly: croot.entry(store.blobPath(digest) ?? "")?.metadata.size ?? 0))
        guard let configDigest = manifest.config?.digest else {
            croot.problem(store.blobPath(manifestDigest) ?? manifestDigest, "manifest of image \(label) has no config")
            return info
        }
        info.configDigest = configDigest
        size = adding(size, manifest.config?.size)
        let layerDescriptors = manifest.layers ?? []
        for l in layerDescriptors { size = adding(size, l.size) }
        guard let config = store.jsonBlob(configDigest, as: OCI.ImageConfig.self) else {
            croot.problem(store.blobPath(configDigest) ?? configDigest, "the config \(configDigest) of image \(label) is missing from the content store")
            info.size = size.map { UInt64(max(0, $0)) }
            return info
        }
        if info.platform == nil { info.platform = config.platform.display }
        let diffIDs = config.diffIDs
        info.diffIDs = diffIDs
        info.chainIDs = dockerChainIDs(diffIDs)
        info.layers = diffIDs.count
        info.created = config.created
        info.cmd = config.config?.cmd
        info.entrypoint = config.config?.entrypoint
        info.size = size.map { UInt64(max(0, $0)) }
        if layerDescriptors.count != diffIDs.count {
            croot.problem(store.blobPath(manifestDigest) ?? manifestDigest,
                          "image \(label): the manifest lists \(layerDescriptors.count) layers, the config \(diffIDs.count) diff ids")
        }
        let records = ns.snapshots[snapshotter] ?? [:]
        for (i, chain) in info.chainIDs.enumerated() {
            let snapshot = records[chain]
            let kind = snapshot?.name.flatMap { store.backends[snapshotter]?[$0]?.kind }
            if snapshot == nil || kind != "Committed" {
                let layerBlob = i < layerDescriptors.count ? layerDescriptors[i].digest : nil
                let blobPresent = layerBlob.map(store.hasBlob) ?? false
                croot.problem("\(ContainerdStore.metaDB) v1/\(ns.name)/snapshots/\(snapshotter)",
                              "image \(label): layer \(i + 1) (diff \(diffIDs[i])) has no committed snapshot \(chain)"
                                  + (blobPresent ? "" : " and its layer blob \(layerBlob ?? "?") is missing"))
            }
        }
        return info
    }
}
