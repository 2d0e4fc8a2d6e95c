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
/// `ctr/<id>/{config, state}` JSON).
struct PodmanLayer {
    var id: String
    var parent: String?
    var diffDigest: String?
    var diffSize: UInt64?
}

extension DataRoot {
    /// A JSON array file (containers/storage's records), or nil with a problem when invalid.
    func jsonArray(_ relative: String) -> [[String: Any]]? {
        guard let bytes = file(relative, limit: Self.jsonLimit) else { return nil }
        do {
            guard let array = try JSONSerialization.jsonObject(with: Data(bytes)) as? [Any] else {
                problem(relative, "is not a JSON array of records")
                return nil
            }
            return array.compactMap { $0 as? [String: Any] }
        } catch {
            problem(relative, "is not a JSON array of records")
            return nil
        }
    }

    /// `bytes` as a JSON object, nil when they are not one (the caller says where).
    func jsonObject(_ bytes: [UInt8]) -> [String: Any]? {
        do {
            return try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        } catch {
            return nil
        }
    }

    func podmanLayers() -> [String: PodmanLayer] {
        var result: [String: PodmanLayer] = [:]
        for record in jsonArray("overlay-layers/layers.json") ?? [] {
            guard let id = record["id"] as? String else { continue }
            guard Self.isSafeID(id) else {
                problem("overlay-layers/layers.json", "layer id \(id.debugDescription) is not a single path component; ignored")
                continue
            }
            result[id] = PodmanLayer(id: id, parent: record["parent"] as? String, diffDigest: record["diff-digest"] as? String,
                                     diffSize: (record["diff-size"] as? NSNumber)?.uint64Value)
            if directory("overlay/\(id)/diff") == nil {
                problem("overlay/\(id)", "layer \(id) has no diff directory")
            }
        }
        for layer in result.values.sorted(by: { $0.id < $1.id }) {
            if let parent = layer.parent, result[parent] == nil {
                problem("overlay-layers/layers.json", "layer \(layer.id) names parent \(parent), which does not exist")
            }
        }
        return result
    }

    /// A layer and its parents, top first; nil (with the reason) when one is missing or it loops.
    func podmanChain(_ top: String, _ layers: [String: PodmanLayer]) -> ([String], String?) {
        var chain: [String] = []
        var current: String? = top
        while let id = current {
            guard !chain.contains(id), chain.count < Self.maximumLayers else { return (chain, "the layer chain of \(top) loops at \(id)") }
            guard let layer = layers[id] else {
                return (chain, chain.isEmpty ? "layer \(id) does not exist" : "layer \(chain.last ?? top) names parent \(id), which does not exist")
            }
            chain.append(id)
            current = layer.parent
        }
        return (chain, nil)
    }

    /// libpod's bolt_state.db: container id -> (config, state) JSON objects.
    func podmanStates() -> [String: (config: [String: Any], state: [String: Any])] {
        let relative = "libpod/bolt_state.db"
        guard let e = entry(relative), e.metadata.type == .regular else { return [:] }
        var result: [String: (config: [String: Any], state: [String: Any])] = [:]
        do {
            let db = try Bolt.Database(source: try FileByteSource(reader: reader, inode: e.inode, name: "\(path)/\(relative)"),
                                       name: "\(path)/\(relative)")
            for (id, bucket) in try db.root.bucket(named: "ctr")?.buckets() ?? [] {
                let v = try bucket.values()
                func object(_ key: String) -> [String: Any] {
                    guard let bytes = v[key] else { return [:] }
                    guard let json = jsonObject(bytes) else {
                        problem(relative, "ctr/\(id)/\(key) is not a JSON object; container \(key) left empty")
                        return [:]
                    }
                    return json
                }
                result[id] = (object("config"), object("state"))
            }
        } catch {
            problem(relative, FWError(error).message)
        }
        return result
    }

    func podmanInventory(countMarkers: Bool) -> (images: [ImageInfo], containers: [ContainerInfo], layers: Int, whiteouts: Int, opaque: Int) {
        let layers = podmanLayers()
        var images: [ImageInfo] = []
        for record in jsonArray("overlay-images/images.json") ?? [] {
            guard let id = record["id"] as? String, Self.isSafeID(id) else { continue }
            let names = (record["names"] as? [Any])?.compactMap { $0 as? String } ?? []
            var info = ImageInfo(id: "sha256:" + id, tags: names, created: record["created"] as? String, layers: 0, size: nil,
                                 cmd: nil, entrypoint: nil, diffIDs: [], chainIDs: [])
            info.targetDigest = record["digest"] as? String
            info.configDigest = "sha256:" + id
            let label = names.first ?? id
            let configFile = "overlay-images/\(id)/=" + Data("sha256:\(id)".utf8).base64EncodedString()
            if let config = json(configFile) {
                let diffIDs = ((config["rootfs"] as? [String: Any])?["diff_ids"] as? [Any])?.compactMap { $0 as? String } ?? []
                info.diffIDs = diffIDs
                info.chainIDs = dockerChainIDs(diffIDs)
                info.layers = diffIDs.count
                info.platform = [config["os"], config["architecture"], config["variant"]].compactMap { $0 as? String }.joined(separator: "/")
                let inner = config["config"] as? [String: Any]
                info.cmd = Self.strings(inner?["Cmd"])
                info.entrypoint = Self.strings(inner?["Entrypoint"])
            } else {
                problem("overlay-images/\(id)", "image \(label): its config (big data sha256:\(id)) is missing")
            }
            if let top = record["layer"] as? String {
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
        let states = podmanStates()
        var containers: [ContainerInfo] = []
        for record in jsonArray("overlay-containers/containers.json") ?? [] {
            guard let id = record["id"] as? String else { continue }
            let name = ((record["names"] as? [Any])?.first as? String) ?? id
            let imageID = record["image"] as? String ?? ""
            let metadata = (record["metadata"] as? String).flatMap { text -> [String: Any]? in
                guard !text.isEmpty else { return nil }
                guard let json = jsonObject(Array(text.utf8)) else {
                    problem("overlay-containers/containers.json", "container \(name): metadata is not a JSON object")
                    return nil
                }
                return json
            }
            let (config, state) = states[id] ?? ([:], [:])
            let code = (state["state"] as? NSNumber)?.intValue ?? 2
            // libpod's ContainerStatus: 1 configured, 2 created, 3 running, 4 stopped, 5 paused, 6 exited, 7 removing, 8 stopping.
            let stateName = [3: "running", 4: "exited", 5: "paused", 6: "exited", 7: "dead", 8: "running"][code] ?? "created"
            let args = Self.strings(((config["spec"] as? [String: Any])?["process"] as? [String: Any])?["args"])
            var info = ContainerInfo(id: id, name: name, image: imageID.isEmpty ? "" : "sha256:" + imageID,
                                     imageTag: metadata?["image-name"] as? String ?? config["rootfsImageName"] as? String,
                                     cmd: args, entrypoint: nil, path: args?.first, args: args.map { Array($0.dropFirst()) },
                                     labels: (config["labels"] as? [String: Any])?.compactMapValues { $0 as? String } ?? [:],
                                     state: stateName, running: stateName == "running", paused: stateName == "paused",
                                     restarting: false, dead: stateName == "dead",
                                     exitCode: (state["exitCode"] as? NSNumber)?.intValue ?? 0, oomKilled: state["oomKilled"] as? Bool ?? false,
                                     startedAt: state["startedTime"] as? String, finishedAt: state["finishedTime"] as? String,
                                     restartPolicy: config["restart_policy"] as? String, restartCount: (state["restartCount"] as? NSNumber)?.intValue ?? 0,
                                     mountID: record["layer"] as? String)
            if !imageID.isEmpty, !images.contains(where: { $0.id == "sha256:" + imageID }) {
                problem("overlay-containers/containers.json", "container \(name) uses image \(imageID), which does not exist")
            }
            if let layer = record["layer"] as? String {
                let (chain, failure) = podmanChain(layer, layers)
                info.snapshotChain = chain
                if let failure { problem("overlay-containers/containers.json", "container \(name): \(failure)") }
            } else {
                problem("overlay-containers/containers.json", "container \(name) has no layer")
            }
            containers.append(info)
        }
        var whiteouts = 0, opaque = 0
        if countMarkers {
            (whiteouts, opaque) = countOverlayMarkers(in: layers.keys.sorted().compactMap { id in directory("overlay/\(id)/diff").map { ($0, "overlay/\(id)/diff") } })
        }
        return (images, containers, layers.count, whiteouts, opaque)
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
