import Assembly
import BoltDB
import DiskImage
import FileSystems
import Foundation

/// Podman's store (containers/storage with the overlay driver, `/var/lib/containers/storage`):
/// `overlay-layers/layers.json` (id, parent, diff-digest, diff-size), `overlay-images/images.json`
/// (id = config digest, names, digest = manifest, layer = top layer) with each image's big data in
/// `overlay-images/<id>/=<base64 of the key>` (the config under its digest), 
/// `overlay-containers/containers.json` (id, names, image, layer = the rw layer, metadata), layer
/// contents in `overlay/<id>/diff`, and libpod's state in `libpod/bolt_state.db` (bbolt:
/// `ctr/<id>/{config, state}` JSON, Podman 4) or `db.sql` (SQLite, Podman 5:
/// DataRoot+PodmanSQLite.swift); one inventory and export path, two state readers.
extension DataRoot {
    /// A JSON array file (containers/storage's records) with the elements that are not `T`
    /// objects left out (each a problem), each with its position, or nil with a problem when it is
    /// not a JSON array.
    func jsonArray<T: Decodable>(_ relative: String, of type: T.Type) -> [(index: Int, value: T)]? {
        guard let bytes = file(relative, limit: Self.jsonLimit) else { return nil }
        guard case .success(let array) = JSONContent.decode([Lenient<T>].self, from: bytes) else {
            problem(relative, "is not a JSON array of records")
            return nil
        }
        for (i, element) in array.enumerated() where element.wrappedValue == nil {
            problem(relative, "record \(i) is not a JSON object; ignored")
        }
        return array.enumerated().compactMap { i, element in element.wrappedValue.map { (i, $0) } }
    }

    /// The records of a containers/storage file, each with its id: a record without an id, with
    /// an id that is not a single path component (`../../x`), or with an id listed before is a
    /// problem naming the file, the record's position and what it is, and is left out (the first
    /// record of an id is kept).
    func podmanRecords<T: Decodable>(_ relative: String, of type: T.Type, what: String, id: (T) -> String?) -> [(id: String, record: T)] {
        var seen = Set<String>()
        var result: [(id: String, record: T)] = []
        for (i, record) in jsonArray(relative, of: T.self) ?? [] {
            guard let id = id(record) else {
                problem(relative, "\(what) record \(i) has no id; ignored")
                continue
            }
            guard NamespacePath.Component(id) != nil else {
                problem(relative, "\(what) id \(id.debugDescription) is not a single path component; ignored")
                continue
            }
            guard seen.insert(id).inserted else {
                problem(relative, "\(what) \(id) is listed more than once; record \(i) ignored")
                continue
            }
            result.append((id, record))
        }
        return result
    }

    /// `bytes` decoded as `T`, nil when they are not JSON of that kind (the caller says where).
    func decoded<T: Decodable>(_ bytes: [UInt8], as type: T.Type) -> T? {
        guard case .success(let value) = JSONContent.decode(T.self, from: bytes) else { return nil }
        return value
    }

    func podmanLayers() -> [String: PodmanJSON.Layer] {
        var result: [String: PodmanJSON.Layer] = [:]
        for (id, record) in podmanRecords("overlay-layers/layers.json", of: PodmanJSON.Layer.self, what: "layer", id: \.id) {
            result[id] = record
            if directory("overlay/\(id)/diff") == nil {
                problem("overlay/\(id)", "layer \(id) has no diff directory")
            }
        }
        for (id, layer) in result.sorted(by: { $0.key < $1.key }) {
            if let parent = layer.parent, result[parent] == nil {
                problem("overlay-layers/layers.json", "layer \(id) names parent \(parent), which does not exist")
            }
        }
        return result
    }

    /// A layer and its parents, top first; nil (with the reason) when one is missing or it loops.
    func podmanChain(_ top: String, _ layers: [String: PodmanJSON.Layer]) -> ([String], String?) {
        var chain: [String] = []
        var current: String? = top
        while let id = current {
            guard !chain.contains(id) else { return (chain, "the layer chain of \(top) loops at \(id)") }
            guard chain.count < Self.maximumLayers else {
                return (chain, "the layer chain of \(top) is longer than \(Self.maximumLayers) layers; not followed beyond \(chain.last ?? top)")
            }
            guard let layer = layers[id] else {
                return (chain, chain.isEmpty ? "layer \(id) does not exist" : "layer \(chain.last ?? top) names parent \(id), which does not exist")
            }
            chain.append(id)
            current = layer.parent
        }
        return (chain, nil)
    }

    /// The nested buckets of a bbolt bucket (each a record, by name); a plain value among them
    /// (other than the keys in `values`) is a problem at `place`, left out.
    func boltRecords(_ bucket: Bolt.Bucket?, at place: String, values: Set<String> = []) throws -> [(name: String, bucket: Bolt.Bucket)] {
        guard let bucket else { return [] }
        var result: [(name: String, bucket: Bolt.Bucket)] = []
        for e in try bucket.entries() {
            if e.isBucket {
                result.append((e.keyString, try bucket.bucket(e)))
            } else if !values.contains(e.keyString) {
                problem("\(place)/\(e.keyString)", "is a value where a record (bucket) belongs; ignored")
            }
        }
        return result
    }

    /// libpod's state of each container: config and state JSON by container id, from the
    /// backend libpod itself would open (`PodmanState.backend`), with the state names of that
    /// Podman generation.
    func podmanStates() -> PodmanState {
        let bolt = entry(PodmanState.boltFile).map { $0.metadata.type == .regular } == true
        let sqlite = entry(PodmanState.sqliteFile).map { $0.metadata.type == .regular } == true
        if bolt && sqlite {
            problem(PodmanState.sqliteFile, "is not read: \(PodmanState.boltFile) is present too, and libpod keeps using BoltDB when it exists "
                    + "(unless containers.conf sets database_backend, which is not read)")
        }
        if bolt { return podmanBoltStates() }
        if sqlite { return podmanSQLiteStates() }
        return PodmanState(backend: .none)
    }

    /// libpod's bolt_state.db (Podman 4, and Podman 5 upgraded from it): `ctr/<id>/{config, state}`.
    func podmanBoltStates() -> PodmanState {
        let relative = PodmanState.boltFile
        var result = PodmanState(backend: .bolt)
        guard let e = entry(relative) else { return result }
        do {
            let db = try Bolt.Database(source: try FileByteSource(reader: reader, inode: e.inode, name: "\(path)/\(relative)"),
                                       name: "\(path)/\(relative)")
            for (id, bucket) in try boltRecords(db.root.bucket(named: "ctr"), at: "\(relative) ctr") {
                guard NamespacePath.Component(id) != nil else {
                    problem("\(relative) ctr", "container id \(id.debugDescription) is not a single path component; ignored")
                    continue
                }
                let v = try bucket.values()
                result.containers[id] = (podmanJSON(v["config"], PodmanJSON.ContainerConfig(), at: relative, "ctr/\(id)/config"),
                                         podmanJSON(v["state"], PodmanJSON.ContainerState(), at: relative, "ctr/\(id)/state"))
            }
        } catch {
            problem(relative, FWError(error).message)
        }
        return result
    }

    /// A libpod JSON record (config or state), `empty` when absent or not a JSON object (a problem).
    func podmanJSON<T: Decodable>(_ bytes: [UInt8]?, _ empty: T, at relative: String, _ place: String) -> T {
        guard let bytes else { return empty }
        guard let value = decoded(bytes, as: T.self) else {
            problem(relative, "\(place) is not a JSON object; container \(place.split(separator: "/").last ?? "") left empty")
            return empty
        }
        return value
    }

    func podmanInventory(countMarkers: Bool) -> StoreInventory {
        var result = StoreInventory()
        let layers = podmanLayers()
        result.images = podmanImages(layers)
        let states = podmanStates()
        result.containers = podmanContainers(layers, images: result.images, states: states)
        result.libpodState = states.info
        result.layers = layers.count
        if countMarkers {
            (result.whiteouts, result.opaque) = countOverlayMarkers(in: layers.keys.sorted().compactMap { id in
                directory("overlay/\(id)/diff").map { ($0, "overlay/\(id)/diff") }
            })
        }
        return result
    }

    /// `overlay-images/images.json` with each image's config; checked against the layers.
    func podmanImages(_ layers: [String: PodmanJSON.Layer]) -> [ImageInfo] {
        var images: [ImageInfo] = []
        for (id, record) in podmanRecords("overlay-images/images.json", of: PodmanJSON.Image.self, what: "image", id: \.id) {
            var info = ImageInfo(id: "sha256:" + id, tags: record.names ?? [], created: record.created, layers: 0, size: nil,
                                 cmd: nil, entrypoint: nil, diffIDs: [], chainIDs: [])
            info.targetDigest = record.digest
            info.configDigest = "sha256:" + id
            let label = record.names?.first ?? id
            let configFile = "overlay-images/\(id)/=" + Data("sha256:\(id)".utf8).base64EncodedString()
            if let config = json(configFile, as: OCI.ImageConfig.self) {
                info.diffIDs = config.diffIDs
                info.chainIDs = dockerChainIDs(config.diffIDs)
                info.layers = config.diffIDs.count
                info.platform = config.platform.display
                info.cmd = config.config?.cmd
                info.entrypoint = config.config?.entrypoint
            } else {
                problem("overlay-images/\(id)", "image \(label): its config (big data sha256:\(id)) is missing")
            }
            if let top = record.layer {
                let (chain, failure) = podmanChain(top, layers)
                if let failure { problem("overlay-images/images.json", "image \(label): \(failure)") }
                let bottomUp = Array(chain.reversed())
                if failure == nil, bottomUp.count != info.diffIDs.count, !info.diffIDs.isEmpty {
                    problem("overlay-images/images.json", "image \(label): \(bottomUp.count) layers, its config lists \(info.diffIDs.count) diff ids")
                }
                for (i, layer) in bottomUp.enumerated() where i < info.diffIDs.count {
                    if let d = layers[layer]?.diffDigest, d != info.diffIDs[i] {
                        problem("overlay-layers/layers.json", "image \(label): layer \(layer) has diff \(d), the config says \(info.diffIDs[i])")
                    }
                }
                let sizes = bottomUp.map { layers[$0]?.diffSize }
                info.size = sizes.contains(where: { $0 == nil }) || failure != nil ? nil : sizes.reduce(UInt64(0)) { $0 &+ ($1 ?? 0) }
            }
            images.append(info)
        }
        return images
    }

    /// `overlay-containers/containers.json` with libpod's state; each one's image and layer chain checked.
    func podmanContainers(_ layers: [String: PodmanJSON.Layer], images: [ImageInfo], states: PodmanState) -> [ContainerInfo] {
        var containers: [ContainerInfo] = []
        for (id, record) in podmanRecords("overlay-containers/containers.json", of: PodmanJSON.Container.self, what: "container", id: \.id) {
            let name = record.names?.first?.wrappedValue ?? id
            let imageID = record.image ?? ""
            let metadata = record.metadata.flatMap { text -> PodmanJSON.ContainerMetadata? in
                guard !text.isEmpty else { return nil }
                guard let json = decoded(Array(text.utf8), as: PodmanJSON.ContainerMetadata.self) else {
                    problem("overlay-containers/containers.json", "container \(name): metadata is not a JSON object")
                    return nil
                }
                return json
            }
            let (config, state) = states.containers[id] ?? (PodmanJSON.ContainerConfig(), PodmanJSON.ContainerState())
            let stateName = states.backend.stateName(state.state)
            let args = config.args
            var info = ContainerInfo(id: id, name: name, image: imageID.isEmpty ? "" : "sha256:" + imageID,
                                     imageTag: metadata?.imageName ?? config.rootfsImageName,
                                     cmd: args, entrypoint: nil, path: args?.first, args: args.map { Array($0.dropFirst()) },
                                     labels: config.labels ?? [:],
                                     state: stateName, running: stateName == "running", paused: stateName == "paused",
                                     restarting: false, dead: stateName == "dead",
                                     exitCode: state.exitCode ?? 0, oomKilled: state.oomKilled,
                                     startedAt: state.startedTime, finishedAt: state.finishedTime,
                                     restartPolicy: config.restartPolicy, restartCount: state.restartCount ?? 0,
                                     mountID: record.layer)
            if !imageID.isEmpty, !images.contains(where: { $0.id == "sha256:" + imageID }) {
                problem("overlay-containers/containers.json", "container \(name) uses image \(imageID), which does not exist")
            }
            if let layer = record.layer {
                let (chain, failure) = podmanChain(layer, layers)
                info.snapshotChain = chain
                if let failure { problem("overlay-containers/containers.json", "container \(name): \(failure)") }
            } else {
                problem("overlay-containers/containers.json", "container \(name) has no layer")
            }
            containers.append(info)
        }
        return containers
    }

    /// Podman exports: a container's rw layer and its parents, an image's top layer and its parents.
    func podmanLayerDiffs(_ top: String, what: String) throws -> [Layer] {
        let (chain, failure) = podmanChain(top, podmanLayers())
        if let failure { throw FWError(.notFound, "\(what): \(failure)", path: path) }
        return try chain.map { id in
            guard let diff = directory("overlay/\(id)/diff") else { throw FWError(.notFound, "\(what): overlay/\(id)/diff is missing", path: path) }
            return Layer(reader: reader, inode: diff)
        }
    }
}

/// Podman's store: images, containers and layers as containers/storage records them.
struct PodmanStore: ImageStore {
    let root: DataRoot

    func inventory(countMarkers: Bool) -> StoreInventory {
        root.podmanInventory(countMarkers: countMarkers)
    }

    /// The image's top layer (images.json `layer`) and its parents.
    func layers(ofImage image: ImageInfo, reference: String, limits: LayerLimits) throws -> [Layer] {
        let records = root.podmanRecords("overlay-images/images.json", of: PodmanJSON.Image.self, what: "image", id: \.id)
        guard let top = records.first(where: { "sha256:" + $0.id == image.id })?.record.layer else {
            throw FWError(.notFound, "image \(image.id) has no layer", path: root.path)
        }
        return try root.podmanLayerDiffs(top, what: "image \(reference)")
    }

    /// The container's rw layer and its parents.
    func layers(ofContainer container: ContainerInfo) throws -> [Layer] {
        guard let layer = container.mountID else { throw FWError(.notFound, "container \(container.name) has no layer", path: root.path) }
        return try root.podmanLayerDiffs(layer, what: "container \(container.name)")
    }
}
