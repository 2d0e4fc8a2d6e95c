import Assembly
import DiskImage
import FileSystems
import Foundation

extension DataRoot {
    /// Integrity check and inventory (never throws: everything wrong is a problem).
    /// `countMarkers: false` skips the walk over every layer diff counting whiteouts and opaque
    /// directories (exports only need the inventory).
    public func inspect(foundVia: [String] = [], countMarkers: Bool = true) -> DataRootReport {
        problems = decisionProblems
        let inventory = imageStore.inventory(countMarkers: countMarkers)
        let (images, containers) = (inventory.images, inventory.containers)
        let volumes = volumeInventory()
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
                              integrity: Integrity(ok: problems.isEmpty, problems: problems, whiteouts: inventory.whiteouts,
                                                   opaqueDirectories: inventory.opaque, layers: inventory.layers),
                              summary: summary, store: store.rawValue, containerdRoot: store == .containerd ? containerdRoot?.path : nil,
                              namespaces: inventory.namespaces, libpodState: inventory.libpodState)
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

    // MARK: Containers

    /// Docker's containers (`containers/<id>/config.v2.json`, `hostconfig.json`), for the
    /// overlay2 and the containerd stores; `check` adds what the store keeps for each (its
    /// layers), in order with the container's own problems.
    func containerInventory(images: Set<String>, check: (inout ContainerInfo, _ id: String) -> Void) -> [ContainerInfo] {
        var result: [ContainerInfo] = []
        for id in names("containers") {
            let base = "containers/\(id)"
            guard let config = json("\(base)/config.v2.json", as: DockerJSON.Container.self) else {
                if entry("\(base)/config.v2.json") == nil { problem(base, "container has no config.v2.json") }
                continue
            }
            let host = entry("\(base)/hostconfig.json") != nil ? json("\(base)/hostconfig.json", as: DockerJSON.HostConfig.self) : nil
            var info = Self.container(config, id: id, restartPolicy: host?.restartPolicy)
            if !info.image.isEmpty, !images.contains(info.image) {
                problem("\(base)/config.v2.json", "container \(info.name) uses image \(info.image), which does not exist")
            }
            check(&info, id)
            result.append(info)
        }
        return result
    }

    /// A container's report entry from its config.v2.json (`id`: its directory's name).
    static func container(_ config: DockerJSON.Container, id: String, restartPolicy: String?) -> ContainerInfo {
        let state = config.state ?? DockerJSON.Container.State()
        let stateName = state.restarting ? "restarting" : state.paused ? "paused" : state.running ? "running" : state.dead ? "dead"
            : (state.startedAt.map { $0.hasPrefix("0001-") } ?? true ? "created" : "exited")
        var name = config.name ?? id
        if name.hasPrefix("/") { name.removeFirst() }
        return ContainerInfo(id: config.id ?? id, name: name, image: config.image ?? "",
                             imageTag: config.config?.image, cmd: config.config?.cmd,
                             entrypoint: config.config?.entrypoint, path: config.path, args: config.args,
                             labels: config.config?.labels ?? [:],
                             state: stateName, running: state.running, paused: state.paused, restarting: state.restarting, dead: state.dead,
                             exitCode: state.exitCode ?? 0, oomKilled: state.oomKilled,
                             startedAt: state.startedAt, finishedAt: state.finishedAt, restartPolicy: restartPolicy,
                             restartCount: config.restartCount ?? 0, mountID: nil)
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
