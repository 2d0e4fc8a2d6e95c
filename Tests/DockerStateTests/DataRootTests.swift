import Assembly
import DiskImage
import DockerState
import FileSystems
import Foundation
import MountPlan
import Testing
import TestSupport

@Suite("SHA-256 and layer chain ids")
struct SHA256Tests {
    @Test("Digests equal Python's hashlib at every padding boundary", arguments: [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 1000, 4097])
    func digest(length: Int) throws {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        #expect(SHA256.hex(bytes) == (try pythonSHA256(bytes)))
    }

    @Test("Fed in pieces (blob files are hashed in chunks) or as a lazy sequence, the digest is the same",
          arguments: [1, 7, 63, 64, 65, 1000])
    func incremental(piece: Int) throws {
        let bytes = (0..<4097).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var hasher = SHA256()
        var i = 0
        while i < bytes.count {
            hasher.update(bytes[i..<min(i + piece, bytes.count)])
            i += piece
        }
        var lazy = SHA256()
        lazy.update(bytes.lazy.map { $0 })
        let one = SHA256.hex(bytes)
        #expect(hasher.finalize().map { String(format: "%02x", $0) }.joined() == one)
        #expect(lazy.finalize().map { String(format: "%02x", $0) }.joined() == one)
        #expect(one == (try pythonSHA256(bytes)))
    }

    @Test("Chain ids equal the ones computed with hashlib")
    func chainIDs() throws {
        let diffs = (1...5).map { "sha256:" + SHA256.hex(Array("layer \($0)".utf8)) }
        #expect(dockerChainIDs(diffs) == (try pythonChainIDs(diffs)))
        #expect(dockerChainIDs([]) == [])
        #expect(dockerChainIDs([diffs[0]]) == [diffs[0]])
    }
}

@Suite("Docker data-root in memory: integrity, inventory, merge")
struct DataRootTests {
    @Test("An intact data-root: integrity ok, both images and containers with their fields")
    func intact() throws {
        let d = try MemoryDataRoot()
        let report = d.dataRoot.inspect()
        #expect(report.driver == "overlay2")
        #expect(report.integrity.ok, "\(report.integrity.problems)")
        #expect(report.integrity.problems.isEmpty)
        // Whiteouts: a.txt and opt/old in image A, etc/motd in web's rw layer; one opaque dir.
        #expect(report.integrity.whiteouts == 3)
        #expect(report.integrity.opaqueDirectories == 1)
        #expect(report.images.count == 2)
        let web = try #require(report.images.first { $0.tags == ["example.com/web:1.0"] })
        #expect(web.id == d.imageIDs["example.com/web:1.0"])
        #expect(web.layers == 2)
        #expect(web.size == 300)
        #expect(web.cmd == ["/app/run.sh"])
        #expect(web.entrypoint == ["/bin/sh", "-c"])
        #expect(web.chainIDs == d.chains["example.com/web:1.0"])
        #expect(web.created == "2024-01-01T00:00:00Z")
        let containers = Dictionary(uniqueKeysWithValues: report.containers.map { ($0.name, $0) })
        let c1 = try #require(containers["web"]), c2 = try #require(containers["job"])
        #expect(c1.running && c1.state == "running" && c1.exitCode == 0 && !c1.oomKilled)
        #expect(!c2.running && c2.state == "exited" && c2.exitCode == 1 && c2.oomKilled)
        #expect(c1.image == d.imageIDs["example.com/web:1.0"] && c1.imageTag == "example.com/web:1.0")
        #expect(c1.restartPolicy == "always" && c2.restartPolicy == "on-failure" && c2.restartCount == 3)
        #expect(c1.labels == ["role": "web"] && c1.cmd == ["x"] && c1.path == "/bin/sh" && c1.args == ["-c", "x"])
        #expect(c2.startedAt == "2024-02-01T10:00:00Z" && c2.finishedAt == "2024-02-01T10:00:05Z")
        #expect(report.volumes.map(\.name) == ["data"] && report.volumes.first?.size == 1300 && report.volumes.first?.files == 2)
        #expect(report.summary.containers == 2 && report.summary.running == 1 && report.summary.exitedNonzero == 1)
        #expect(report.summary.imagesWithoutContainers.isEmpty)
    }

    /// One planted problem each: the mutation and a fragment of the expected problem text.
    nonisolated(unsafe) static let damage: [(String, @Sendable (inout MemoryDataRoot) -> Void, String)] = [
        ("dangling l/ link", { d in d.fs.addSymlink(d.p("overlay2/l/SDANGLE"), target: "../nothere/diff") }, "overlay2/l/SDANGLE: dangling"),
        ("layer without diff", { d in
            d.fs.addFile(d.p("overlay2/\(d.appB)/diff"), "not a directory")
        }, "has no diff directory"),
        ("lower chain loops", { d in
            d.fs.addFile(d.p("overlay2/mweb/lower"), "l/SIweb:l/SBASE:l/SIweb")
        }, "loops"),
        ("layer id with ..", { d in d.fs.addFile(d.p("image/overlay2/layerdb/mounts/\(d.containerIDs["job"]!)/mount-id"), "../../etc") },
         "is not a single path component"),
        ("lower entry with ..", { d in d.fs.addFile(d.p("overlay2/mjob/lower"), "l/../../x") }, "is not l/<id>"),
        ("symlinked layer directory outside", { d in d.fs.addSymlink(d.p("overlay2/escape"), target: "/etc") },
         "overlay2/escape: layer directory is a symlink to /etc; not followed"),
        ("l/ link outside", { d in d.fs.addSymlink(d.p("overlay2/l/SOUT"), target: "/etc/passwd") }, "outside the layer directories"),
        ("truncated config.v2.json", { d in d.fs.addFile(d.p("containers/\(d.containerIDs["job"]!)/config.v2.json"), "{\"ID\": \"x\", \"Na") },
         "config.v2.json: invalid JSON"),
        ("missing init layer", { d in d.fs.addFile(d.p("image/overlay2/layerdb/mounts/\(d.containerIDs["web"]!)/init-id"), "gone-init") },
         "layer directory overlay2/gone-init is missing"),
        ("missing layerdb entry", { d in
            let chain = d.chains["example.com/job:latest"]![1]
            d.fs.addFile(d.p("image/overlay2/layerdb/sha256/\(chain.dropFirst(7))"), "no longer a directory")
        }, "is not in layerdb"),
        ("repositories.json points at a missing image", { d in
            d.fs.addFile(d.p("image/overlay2/repositories.json"), "{\"Repositories\": {\"ghost\": {\"ghost:1\": \"sha256:00\"}}}")
        }, "ghost:1 points at image sha256:00, which does not exist"),
        ("invalid repositories.json", { d in d.fs.addFile(d.p("image/overlay2/repositories.json"), "[1,") }, "repositories.json: invalid JSON"),
        ("container of a missing image", { d in
            let id = d.containerIDs["web"]!
            d.fs.addFile(d.p("containers/\(id)/config.v2.json"), "{\"ID\": \"\(id)\", \"Name\": \"/web\", \"Image\": \"sha256:feed\", \"State\": {}}")
        }, "uses image sha256:feed, which does not exist"),
        ("layerdb parent chain loops", { d in
            let chain = d.chains["example.com/web:1.0"]!
            d.fs.addFile(d.p("image/overlay2/layerdb/sha256/\(chain[0].dropFirst(7))/parent"), chain[1])
        }, "the parent chain loops"),
    ]

    @Test("Each planted problem is reported with its path, never fatal", arguments: 0..<Self.damage.count)
    func damaged(index: Int) throws {
        var d = try MemoryDataRoot()
        let (name, mutate, fragment) = Self.damage[index]
        mutate(&d)
        let report = d.dataRoot.inspect()
        #expect(!report.integrity.ok, "\(name)")
        #expect(report.integrity.problems.contains { $0.contains(fragment) }, "\(name): \(report.integrity.problems)")
        #expect(report.integrity.problems.allSatisfy { $0.hasPrefix("/dr/") }, "\(name)")
    }

    /// The merged view as a path -> entry map.
    func merged(_ layers: [Layer]) throws -> [String: WalkEntry] {
        var walk = TreeWalk(try NamespaceFileSystem(overlayOf: layers, name: "test"))
        var result: [String: WalkEntry] = [:]
        var order: [String] = []
        while let e = walk.next() {
            let path = String(decoding: e.path, as: UTF8.self)
            #expect(result[path] == nil, "\(path) twice")
            result[path] = e
            order.append(path)
        }
        #expect(walk.problems.isEmpty)
        // Depth-first, names sorted bytewise.
        let components = order.map { $0.split(separator: "/").map { Array($0.utf8) } }
        for (a, b) in zip(components, components.dropFirst()) {
            #expect(a.lexicographicallyPrecedes(b) { $0.lexicographicallyPrecedes($1) }, "\(a) before \(b)")
        }
        return result
    }

    @Test("Container export: rw over -init over image layers, whiteouts and opaque dirs applied")
    func containerMerge() throws {
        let d = try MemoryDataRoot()
        let (id, layers) = try d.dataRoot.containerLayers("web")
        #expect(id == d.containerIDs["web"])
        #expect(layers.count == 4)
        let tree = try merged(layers)
        let files = Set(tree.filter { $0.value.metadata.type != .directory }.keys)
        #expect(files == ["bin/sh", "etc/passwd", "usr/share/doc/b.txt", "var/cache/new.txt", "lib/libx.so.1", "lib/libx.so",
                          "app/run.sh", "app/passwd-copy", "etc/hostname", ".dockerenv", "run/web.pid"])
        #expect(tree["opt"] != nil && tree["opt/old"] == nil && tree["etc/motd"] == nil && tree["usr/share/doc/a.txt"] == nil)
        #expect(tree.values.allSatisfy { !OverlayMerge.isWhiteout($0.metadata) })
        #expect(tree.values.allSatisfy { $0.metadata.xattrs.allSatisfy { !$0.name.contains("overlay.") } })
        #expect(tree["bin/sh"]?.metadata.permissions == 0o4755)
        // Hardlinks: within the base layer, and across layers (app/passwd-copy is etc/passwd).
        #expect(tree["lib/libx.so"]?.hardlinkTarget == nil && tree["lib/libx.so.1"]?.hardlinkTarget == Array("lib/libx.so".utf8))
        #expect(tree["etc/passwd"]?.hardlinkTarget == Array("app/passwd-copy".utf8))
        // Contents come from the layer holding the visible entry.
        let hostname = try #require(tree["etc/hostname"])
        #expect(try hostname.reader.readSmallFile(hostname.metadata.inode) == Array("web".utf8))
    }

    @Test("Image export: the image's layers only; the job image keeps etc/motd and opt/old")
    func imageMerge() throws {
        let d = try MemoryDataRoot()
        let (id, layers) = try d.dataRoot.imageLayers("example.com/job:latest")
        #expect(id == d.imageIDs["example.com/job:latest"])
        let tree = try merged(layers)
        #expect(tree["etc/motd"]?.metadata.uid == 1000)
        #expect(tree["opt/old/file.txt"] != nil && tree["usr/share/doc/a.txt"] != nil && tree["var/cache/old.txt"] != nil)
        #expect(tree["app/job.sh"] != nil && tree["app/run.sh"] == nil && tree[".dockerenv"] == nil)
        #expect(throws: FWError.self) { try d.dataRoot.imageLayers("nope:latest") }
        #expect(throws: FWError.self) { try d.dataRoot.containerLayers("nope") }
    }

    @Test("Unit files: --data-root, -g, --graph in ExecStart= and Environment=")
    func unitOptions() {
        let unit = """
            [Service]
            Environment="DOCKER_OPTS=--data-root=/mnt/a"
            ExecStart=/usr/bin/dockerd -H fd:// \\
                --data-root /mnt/b --log-level warn
            ExecStartPre=/bin/true --data-root /not/this
            ExecStart=/usr/bin/balena-engine-daemon -g /mnt/c --graph=/mnt/d
            """
        #expect(DataRootLocator.dataRootOptions(inUnit: unit) == ["/mnt/a", "/mnt/b", "/mnt/c", "/mnt/d"])
    }

    static func plan(_ mounts: [PlannedMount]) -> Plan {
        Plan(root: RootChoice(partition: 1, filesystem: "memory", reason: "test"), mounts: mounts, skipped: [], warnings: [], profile: "test")
    }

    @Test("Located once, by its real location, through daemon.json, a bind and the default path")
    func locate() throws {
        let root = MemoryFileSystem()
        root.addFile("etc/docker/daemon.json", "{\"data-root\": \"/var/lib/docker\"}")
        root.addDirectory("var/lib/docker")
        root.addDirectory("mnt/data")
        let data = try MemoryDataRoot(prefix: "docker")
        let p = Self.plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/mnt/data", kind: .partition, partition: 2, declaredBy: "t"),
            PlannedMount(where: "/var/lib/docker", kind: .bind, what: "/mnt/data/docker", declaredBy: "t"),
        ])
        let fss: [Int: MemoryFileSystem] = [1: root, 2: data.fs]
        let ns = try NamespaceFileSystem(plan: p) { fss[$0.partition ?? 0] }
        let report = DataRootLocator.report(for: ns, binds: [("/var/lib/docker", "/mnt/data/docker")])
        #expect(report.dataRoots.count == 1)
        let r = try #require(report.dataRoots.first)
        #expect(r.path == "/mnt/data/docker")
        #expect(r.foundVia == ["/var/lib/docker"])
        #expect(r.integrity.ok, "\(r.integrity.problems)")
        #expect(r.containers.count == 2)
        #expect(report.problems.isEmpty)
    }

    @Test("balena-engine unit's --data-root and a symlinked default path: one data-root, engine balena-engine")
    func balena() throws {
        let root = MemoryFileSystem()
        root.addFile("lib/systemd/system/balena.service", "[Service]\nExecStart=/usr/bin/balenad --delta-data-root=/x --data-root=/mnt/data/balena-engine -H fd://\n")
        root.addDirectory("var/lib")
        root.addSymlink("var/lib/balena-engine", target: "/mnt/data/balena-engine")
        root.addDirectory("mnt/data")
        let data = try MemoryDataRoot(prefix: "balena-engine")
        let p = Self.plan([
            PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t"),
            PlannedMount(where: "/mnt/data", kind: .partition, partition: 2, declaredBy: "t"),
        ])
        let fss: [Int: MemoryFileSystem] = [1: root, 2: data.fs]
        let ns = try NamespaceFileSystem(plan: p) { fss[$0.partition ?? 0] }
        let report = DataRootLocator.report(for: ns)
        #expect(report.dataRoots.map(\.path) == ["/mnt/data/balena-engine"])
        #expect(report.dataRoots.first?.engine == "balena-engine")
        #expect(report.dataRoots.first?.foundVia == ["/mnt/data/balena-engine", "/var/lib/balena-engine"])
        #expect(report.dataRoots.first?.summary.running == 1)
    }

    @Test("Bad daemon.json and a configured data-root that does not exist are reported, not fatal")
    func badConfiguration() throws {
        let root = MemoryFileSystem()
        root.addFile("etc/docker/daemon.json", "{\"data-root\": ")
        root.addFile("usr/lib/docker/daemon.json", "{\"graph\": \"/nowhere\"}")
        let ns = try NamespaceFileSystem(plan: Self.plan([PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t")])) { _ in root }
        let report = DataRootLocator.report(for: ns)
        #expect(report.dataRoots.isEmpty)
        #expect(report.problems.contains { $0.hasPrefix("/etc/docker/daemon.json") })
        #expect(report.problems.contains { $0.hasPrefix("/nowhere") })
    }

    @Test("A containerd snapshotter directory without meta.db: the containerd store, its database reported missing")
    func containerd() throws {
        let fs = MemoryFileSystem()
        fs.addDirectory("containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots")
        let report = DataRoot(reader: fs, inode: fs.rootInode, path: "/mnt/data/docker", engine: "docker").inspect()
        #expect(report.driver == "containerd-snapshotter" && report.store == "containerd")
        #expect(report.containerdRoot == "/mnt/data/docker/containerd/daemon")
        #expect(report.integrity.problems.contains {
            $0 == "/mnt/data/docker/containerd/daemon/io.containerd.metadata.v1.bolt/meta.db: the containerd metadata database is missing"
        })
    }

    @Test("containerd alone at the root configured in /etc/containerd/config.toml; podman's default store")
    func containerdConfiguredRootAndPodman() throws {
        let root = MemoryFileSystem()
        root.addFile("etc/containerd/config.toml", "version = 2\nroot = \"/data/ctd\"\nstate = \"/run/containerd\"\n[plugins]\n  root = \"/wrong\"\n")
        root.addDirectory("data/ctd/io.containerd.metadata.v1.bolt")
        root.addDirectory("var/lib/containers/storage/overlay-layers")
        let ns = try NamespaceFileSystem(plan: Self.plan([PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t")])) { _ in root }
        let report = DataRootLocator.report(for: ns)
        #expect(report.dataRoots.map(\.path) == ["/data/ctd", "/var/lib/containers/storage"])
        let ctd = try #require(report.dataRoots.first)
        #expect(ctd.engine == "containerd" && ctd.store == "containerd" && ctd.containerdRoot == "/data/ctd")
        #expect(ctd.integrity.problems == ["/data/ctd/io.containerd.metadata.v1.bolt/meta.db: the containerd metadata database is missing"])
        let podman = try #require(report.dataRoots.last)
        #expect(podman.engine == "podman" && podman.store == "podman" && podman.driver == "overlay")
        #expect(podman.integrity.ok && podman.images.isEmpty && podman.containers.isEmpty)
    }

    /// HAOS disks upgraded to 17 keep overlay2 and also get a containerd root: the store is
    /// decided per data-root (containers' Driver, then the flag file, then overlay2's folders).
    @Test("Store decision on upgraded disks", arguments: [
        ("overlay2", false, true, "overlay2"),     // containers say overlay2: the flag does not matter
        ("overlay2", true, true, "overlay2"),
        ("overlayfs", false, true, "containerd"),  // containers say overlayfs
        (nil, true, true, "containerd"),           // no container: the flag file decides
        (nil, false, true, "overlay2"),            // no container, no flag: overlay2's folders
        (nil, false, false, "containerd"),         // a containerd root alone
    ] as [(String?, Bool, Bool, String)])
    func storeDecision(driver: String?, flag: Bool, overlay2: Bool, expected: String) throws {
        let fs = MemoryFileSystem()
        fs.addDirectory("containerd/daemon/io.containerd.metadata.v1.bolt")
        if overlay2 {
            fs.addDirectory("overlay2/l")
            fs.addDirectory("image/overlay2/layerdb")
        }
        if let driver {
            fs.addFile("containers/\(String(repeating: "a", count: 64))/config.v2.json", "{\"Driver\": \"\(driver)\"}")
        }
        let root = DataRoot(reader: fs, inode: fs.rootInode, path: "/mnt/data/docker", engine: "docker", containerdFeature: flag)
        #expect(root.containerdRoot?.path == "/mnt/data/docker/containerd/daemon")
        #expect(root.store.rawValue == expected)
        #expect(root.inspect(countMarkers: false).store == expected)
    }

    @Test("The HAOS flag file beside the data-root is found by the locator")
    func flagFile() throws {
        for flag in [false, true] {
            let root = MemoryFileSystem()
            root.addFile("etc/docker/daemon.json", "{\"data-root\": \"/mnt/data/docker\"}")
            root.addDirectory("mnt/data/docker/overlay2/l")
            root.addDirectory("mnt/data/docker/image/overlay2")
            root.addDirectory("mnt/data/docker/containerd/daemon/io.containerd.metadata.v1.bolt")
            if flag { root.addFile("mnt/data/.docker-use-containerd-snapshotter", "") }
            let ns = try NamespaceFileSystem(plan: Self.plan([PlannedMount(where: "/", kind: .partition, partition: 1, declaredBy: "t")])) { _ in root }
            let (roots, _) = DataRootLocator.locate(in: ns)
            let found = try #require(roots.first?.root)
            #expect(found.containerdFeature == flag)
            #expect(found.store == (flag ? .containerd : .overlay2))
        }
    }

    /// The JSON is decoded as JSONSerialization + `as?` read it before the Codable types: a field
    /// of another type is absent, an element of another type left out, a number truncated, 0/1
    /// read as a boolean; only a file that is not JSON, or not an object, is a problem.
    @Test("Tolerant decoding: odd fields are absent, malformed files are problems with the same messages")
    func tolerantDecoding() throws {
        let fs = MemoryFileSystem()
        fs.addDirectory("overlay2/l")
        fs.addDirectory("image/overlay2/layerdb/sha256")
        fs.addFile("image/overlay2/repositories.json", "{\"Repositories\": []}")
        let ids = ["a", "b", "c", "d"].map { String(repeating: $0, count: 64) }
        fs.addFile("containers/\(ids[0])/config.v2.json", """
            {"ID": 5, "Name": "/odd", "Image": "", "Args": ["a", 1, null, "b"], "Driver": "overlay2",
             "Config": {"Cmd": "not an array", "Labels": {"x": "y", "n": 3}},
             "State": {"Running": 1, "ExitCode": 2.7, "StartedAt": "2024-01-01T00:00:00Z"}, "RestartCount": "x"}
            """)
        fs.addFile("containers/\(ids[0])/hostconfig.json", "{\"RestartPolicy\": \"always\"}")
        fs.addFile("containers/\(ids[1])/config.v2.json", "[1, 2]")
        fs.addFile("containers/\(ids[2])/config.v2.json", "{\"ID\": ")
        fs.addFile("containers/\(ids[3])/config.v2.json", "5")
        let root = DataRoot(reader: fs, inode: fs.rootInode, path: "/dr", engine: "docker")
        #expect(root.store == .overlay2 && root.driver == "overlay2")
        let report = root.inspect()
        #expect(report.store == StoreKind.overlay2.rawValue)
        let odd = try #require(report.containers.first)
        #expect(report.containers.count == 1)
        #expect(odd.id == ids[0] && odd.name == "odd" && odd.args == ["a", "b"] && odd.cmd == nil && odd.labels == ["x": "y"])
        #expect(odd.running && odd.state == "running" && odd.exitCode == 2 && odd.restartCount == 0 && odd.restartPolicy == nil)
        let problems = report.integrity.problems
        #expect(problems.contains("/dr/image/overlay2/repositories.json: has no Repositories object"))
        #expect(problems.contains("/dr/containers/\(ids[1])/config.v2.json: is not a JSON object"))
        #expect(problems.contains("/dr/containers/\(ids[2])/config.v2.json: invalid JSON (7 bytes): truncated or malformed"))
        #expect(problems.contains("/dr/containers/\(ids[3])/config.v2.json: invalid JSON (1 bytes): truncated or malformed"))
        #expect(!problems.contains { $0.contains(ids[0]) && !$0.contains("layerdb/mounts") }, "\(problems)")
    }

    @Test("The report's store strings are StoreKind's raw values")
    func storeKindStrings() {
        #expect(StoreKind.allCases.map(\.rawValue) == ["overlay2", "containerd", "podman", "unknown"])
    }
}
