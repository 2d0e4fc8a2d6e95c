import DockerState
import FirmwareAssembler
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What containerd itself said while the containerd-root recipe ran it (images/disks/containerd-root.sh).
struct ContainerdFacts {
    let dir: String
    func text(_ name: String) throws -> String { try String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8) }
    /// Rows of a `ctr ... ls` table, split on runs of whitespace, header dropped.
    func rows(_ name: String) throws -> [[String]] {
        try text(name).split(separator: "\n").dropFirst().map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
    }
    static func load() throws -> ContainerdFacts {
        let disk = try TestImages.path("containerd-root.img")
        return ContainerdFacts(dir: String(disk.dropLast(4)) + ".facts")
    }
    /// containerd's snapshot directories of a container, upper first, from `ctr snapshots mounts`.
    func snapshotDirectories(_ name: String, root: String) throws -> [String] {
        let line = try text("mounts-\(name).txt").replacingOccurrences(of: "@ROOT@", with: root).trimmingCharacters(in: .whitespacesAndNewlines)
        let options = try #require(line.split(separator: " ").last).split(separator: ",")
        let upper = try #require(options.first { $0.hasPrefix("upperdir=") }).dropFirst(9)
        let lower = try #require(options.first { $0.hasPrefix("lowerdir=") }).dropFirst(9).split(separator: ":")
        return [String(upper)] + lower.map(String.init)
    }
}

/// go-units HumanSize, as `ctr content ls` prints sizes ("351B", "10.24kB").
func humanSize(_ n: Int64) -> String {
    var v = Double(n)
    var unit = 0
    let units = ["B", "kB", "MB", "GB"]
    while v >= 1000, unit < units.count - 1 { v /= 1000; unit += 1 }
    return String(format: "%.4g", v) + units[unit]
}

@Suite("fwassemble docker on the containerd image store (real containerd)", .enabled(if: getuid() == 0))
struct ContainerdEndToEndTests {
    func report(_ image: String) throws -> DataRootReport {
        let report = try Disk(path: try TestImages.path(image)).docker()
        #expect(report.dataRoots.count == 1)
        return try #require(report.dataRoots.first)
    }

    @Test("Inventory equals what ctr listed while the daemon ran; the store is clean")
    func inventory() throws {
        let facts = try ContainerdFacts.load()
        let root = try report("containerd-root.img")
        #expect(root.path == "/mnt/data/docker")
        #expect(root.store == "containerd")
        #expect(root.containerdRoot == "/mnt/data/docker/containerd/daemon")
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        let ns = try #require(root.namespaces?.first { $0.name == "moby" })
        #expect(root.namespaces?.count == 1)
        try Self.compare(ns, root, facts, prefix: "")
        let snapshots = try facts.rows("snapshots.txt")
        // Containers: Docker's config.v2.json, chains from the snapshots ctr listed.
        let ids = try facts.text("containers.txt").split(separator: "\n").map(String.init)
        let web = try #require(root.containers.first { $0.name == "web" })
        let job = try #require(root.containers.first { $0.name == "job" })
        #expect(web.id == ids[0] && job.id == ids[1])
        #expect(web.running && web.state == "running" && job.state == "exited" && job.exitCode == 1)
        for c in [web, job] {
            var chain: [String] = []
            var key: String? = c.id
            while let k = key { chain.append(k); key = snapshots.first { $0[0] == k }.flatMap { $0.count == 3 ? $0[1] : nil } }
            #expect(c.snapshotChain == chain)
            #expect(root.images.contains { $0.id == c.image })
        }
        #expect(root.summary.running == 1 && root.summary.exitedNonzero == 1)
        #expect(root.volumes.map(\.name) == ["webdata"])
    }

    /// The namespace equals what `ctr images ls`, `ctr snapshots ls`, `ctr content ls` printed.
    static func compare(_ ns: NamespaceInfo, _ root: DataRootReport, _ facts: ContainerdFacts, prefix: String) throws {
        // ctr images ls: REF TYPE DIGEST SIZE(value unit) PLATFORMS LABELS
        let images = try facts.rows(prefix + "images.txt")
        #expect(ns.images.map(\.name).sorted() == images.map { $0[0] }.sorted())
        for row in images {
            let record = try #require(ns.images.first { $0.name == row[0] })
            #expect(record.mediaType == row[1])
            #expect(record.digest == row[2])
            let image = try #require(root.images.first { $0.id == row[2] })
            #expect(image.id == row[2] && image.targetDigest == row[2])
            #expect(String(format: "%.1f", Double(image.size ?? 0) / 1024) + " " + "KiB" == row[3] + " " + row[4])
            #expect(image.platform.map { row[5].split(separator: ",").contains(Substring($0)) } == true, "\(row)")
        }
        // ctr snapshots ls: KEY PARENT KIND (no parent: two columns)
        let snapshots = try facts.rows(prefix + "snapshots.txt")
        #expect(ns.snapshots.count == snapshots.count)
        for row in snapshots {
            let s = try #require(ns.snapshots.first { $0.key == row[0] })
            #expect(s.parent == (row.count == 3 ? row[1] : nil))
            #expect(s.kind == row.last)
        }
        // ctr content ls: DIGEST SIZE AGE... LABELS
        let content = try facts.rows(prefix + "content.txt")
        #expect(ns.content.map(\.digest).sorted() == content.map { $0[0] }.sorted())
        for row in content {
            #expect(ns.content.first { $0.digest == row[0] }.flatMap(\.size).map(humanSize) == row[1])
        }
    }

    /// The recipe's names, as containerd holds them (`ctr images ls`) and as Docker shows them
    /// (`docker images`: REPOSITORY:TAG, `docker inspect`: RepoDigests), one target each:
    /// web's manifest W: docker.io/example/web:1.0, docker.io/library/web:latest,
    /// registry.example:5000/x/web:1, docker.io/example/web@W; job's manifest J:
    /// docker.io/example/job:2.0, docker.io/realdev/base:1; job's index JI: docker.io/library/job@JI
    /// only; web's index WI: moby-dangling@WI only.
    @Test("Docker's names: familiar tags, RepoDigests, digest-only and dangling images; raw names in the namespace")
    func dockerNames() throws {
        let facts = try ContainerdFacts.load()
        let root = try report("containerd-root.img")
        let layers = try #require(try JSONSerialization.jsonObject(with: Data(try facts.text("layers.json").utf8)) as? [String: [String: Any]])
        let w = try #require(layers["docker.io/example/web:1.0"]?["manifest"] as? String)
        let j = try #require(layers["docker.io/example/job:2.0"]?["manifest"] as? String)
        let indexes = try facts.text("indexes.txt").split(separator: "\n").map(String.init)
        let (ji, wi, mi) = (indexes[0], indexes[1], indexes[2])
        let expected: [String: (tags: [String], digests: [String])] = [
            // familiar name (docker.io/ dropped), library prefix dropped, other registry whole; the
            // digest name folds into the RepoDigest of its repository
            w: (["example/web:1.0", "registry.example:5000/x/web:1", "web:latest"],
                ["example/web@\(w)", "registry.example:5000/x/web@\(w)", "web@\(w)"]),
            j: (["example/job:2.0", "realdev/base:1"], ["example/job@\(j)", "realdev/base@\(j)"]),
            ji: ([], ["job@\(ji)"]),   // digest-only: <none> tag, one RepoDigest
            wi: ([], []),               // dangling: <none>:<none>
            mi: (["example/multi:1"], ["example/multi@\(mi)"]),
        ]
        #expect(Set(root.images.map(\.id)) == Set(expected.keys))
        for image in root.images {
            #expect(image.tags == expected[image.id]?.tags, "\(image.id)")
            #expect(image.repoDigests == expected[image.id]?.digests, "\(image.id)")
        }
        // multi:1's index lists arm64 first: the device's amd64 manifest (web's) is used
        let multi = try #require(root.images.first { $0.id == mi })
        #expect(multi.platform == "linux/amd64" && multi.configDigest == (layers["docker.io/example/web:1.0"]?["config"] as? String))
        #expect(multi.chainIDs == (layers["docker.io/example/web:1.0"]?["chain_ids"] as? [String]))
        // containerd's own view keeps the raw names (`ctr images ls`)
        let ns = try #require(root.namespaces?.first)
        #expect(ns.images.map(\.name).sorted() == (try facts.rows("images.txt")).map { $0[0] }.sorted())
        #expect(ns.images.contains { $0.name == "moby-dangling@\(wi)" && $0.digest == wi })
        // one matcher: every name a user may write for each image
        let cases: [(String, String?)] = [
            ("web", w), ("web:latest", w), ("library/web", w), ("docker.io/library/web:latest", w), ("example/web:1.0", w),
            ("docker.io/example/web:1.0", w), ("registry.example:5000/x/web:1", w), ("web@\(w)", w), ("example/web@\(w)", w),
            ("docker.io/example/web@\(w)", w), ("example/web:1.0@\(w)", w), (w, w), (String(w.dropFirst(7)), w), (String(w.prefix(19)), w),
            ("realdev/base:1", j), ("docker.io/realdev/base:1", j), ("example/job:2.0", j), ("job@\(ji)", ji),
            ("docker.io/library/job@\(ji)", ji), (wi, wi),
            ("registry.example:5000/x/web", nil), ("realdev/base", nil), ("job", nil), ("example/web", nil), ("web@\(j)", nil),
            ("moby-dangling", nil),
        ]
        for (reference, id) in cases {
            if case .found(let image) = ImageLookup.find(reference, in: root.images) {
                #expect(image.id == id, "\(reference)")
            } else {
                #expect(id == nil, "\(reference) not found")
            }
        }
    }

    @Test("containerd alone (k3s): one root, namespace k8s.io, inventory equals ctr's lists, clean")
    func k3s() throws {
        let facts = try ContainerdFacts.load()
        let root = try report("containerd-k3s.img")
        #expect(root.path == "/var/lib/rancher/k3s/agent/containerd" && root.engine == "k3s" && root.store == "containerd")
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        let ns = try #require(root.namespaces?.first)
        #expect(root.namespaces?.map(\.name) == ["k8s.io"])
        try Self.compare(ns, root, facts, prefix: "k3s-")
        #expect(ns.containers == (try facts.rows("k3s-containers.txt")).map { $0[0] })
        #expect(root.containers.isEmpty)
    }

    @Test("The binary: --json carries store and namespaces, --expect matches the containerd store's containers",
          .enabled(if: DockerBinary.path != nil))
    func binary() throws {
        let path = try TestImages.path("containerd-root.img")
        let r = try DockerBinary.run(["docker", path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let root = try #require((doc["data_roots"] as? [[String: Any]])?.first)
        #expect(root["store"] as? String == "containerd" && root["containerd_root"] as? String == "/mnt/data/docker/containerd/daemon")
        #expect((root["namespaces"] as? [[String: Any]])?.first?["name"] as? String == "moby")
        let image = try #require((root["images"] as? [[String: Any]])?.first)
        for key in ["target_digest", "config_digest", "platform", "media_type"] { #expect(image[key] is String, "\(key)") }
        #expect((root["containers"] as? [[String: Any]])?.allSatisfy { $0["snapshot_chain"] is [String] } == true)
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let expected = dir.appendingPathComponent("expected.json")
        try Data("[{\"name\": \"web\", \"image\": \"docker.io/example/web:1.0\"}, {\"name\": \"job\"}]".utf8).write(to: expected)
        let ok = try DockerBinary.run(["docker", path, "--expect", expected.path])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("integrity: ok"))
        // Docker's names: familiar, `:latest` implied, another of the image's tags, a RepoDigest
        let layers = try JSONSerialization.jsonObject(with: Data(try ContainerdFacts.load().text("layers.json").utf8)) as? [String: [String: Any]]
        let jobManifest = try #require(layers?["docker.io/example/job:2.0"]?["manifest"] as? String)
        try Data("[{\"name\": \"web\", \"image\": \"web\"}, {\"name\": \"job\", \"image\": \"realdev/base@\(jobManifest)\"}]".utf8).write(to: expected)
        let familiar = try DockerBinary.run(["docker", path, "--expect", expected.path])
        #expect(familiar.status == 0, "\(familiar.stderr)")
        try Data("[{\"name\": \"web\", \"image\": \"example/job:2.0\"}, {\"name\": \"job\", \"image\": \"realdev/base\"}]".utf8).write(to: expected)
        let wrong = try DockerBinary.run(["docker", path, "--expect", expected.path])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("container web runs image") && wrong.stderr.contains("expected example/job:2.0"), "\(wrong.stderr)")
        #expect(wrong.stderr.contains("expected realdev/base"), "\(wrong.stderr)")
    }

    @Test("Integrity finds every planted problem")
    func broken() throws {
        let facts = try ContainerdFacts.load()
        let root = try report("containerd-root-broken.img")
        let problems = root.integrity.problems.joined(separator: "\n")
        #expect(!root.integrity.ok)
        let layers = try JSONSerialization.jsonObject(with: Data(try facts.text("layers.json").utf8)) as? [String: [String: Any]]
        let job = try #require(layers?["docker.io/example/job:2.0"])
        let config = try #require(job["config"] as? String)
        let layerBlob = try #require((job["layer_blobs"] as? [String])?.last)
        let ids = try facts.text("containers.txt").split(separator: "\n").map(String.init)
        #expect(problems.contains("blob \(config) (moby) is missing from the content store"))
        #expect(problems.contains("the config \(config) of image docker.io/example/job:2.0 is missing"))
        #expect(problems.contains("blobs/sha256/\(layerBlob.dropFirst(7)): content is sha256:"))
        #expect(problems.contains("names parent snapshot \(ids[1])-lost, which does not exist"))
        #expect(problems.contains("container ghost: snapshot "))
        // job's index (named only by a digest) resolves to job's manifest: its config is missing too.
        let indexes = try facts.text("indexes.txt").split(separator: "\n")
        #expect(problems.contains("the config \(config) of image docker.io/library/job@\(indexes[0]) is missing"))
        // The device is riscv64 (/bin/sh): each index falls back to its first present manifest, named.
        for (index, name, platform) in [(indexes[0], "docker.io/library/job@\(indexes[0])", "linux/amd64"),
                                         (indexes[1], "moby-dangling@\(indexes[1])", "linux/amd64"),
                                         (indexes[2], "docker.io/example/multi:1", "linux/arm64/v8")] {
            #expect(problems.contains("blobs/sha256/\(index.dropFirst(7)): image \(name): the index has no manifest present for the device's "
                                      + "architecture riscv64 (ELF header of /bin/sh); the first present, \(platform) sha256:"), "\(name)")
        }
        #expect(root.images.first { $0.id == indexes[2] }?.platform == "linux/arm64/v8")
        #expect(root.integrity.problems.count == 10, "\(problems)")
    }

    /// Exports compared with the kernel's read-only overlay mount of the directories containerd
    /// itself mounts for the container (`ctr snapshots mounts`), the partition loop-mounted; an
    /// image is the container's mount without its top `drop` snapshots.
    @Test("Container and image exports equal the kernel's overlay mount of the same snapshots", arguments: [
        ("containerd-root.img", 3, "docker/containerd/daemon", "web", false, "web", 0),
        ("containerd-root.img", 3, "docker/containerd/daemon", "job", false, "job", 0),
        ("containerd-root.img", 3, "docker/containerd/daemon", "docker.io/example/web:1.0", true, "web", 2),
        ("containerd-root.img", 3, "docker/containerd/daemon", "docker.io/example/job:2.0", true, "job", 2),
        ("containerd-root.img", 3, "docker/containerd/daemon", "web", true, "web", 2),
        ("containerd-root.img", 3, "docker/containerd/daemon", "realdev/base:1", true, "job", 2),
        ("containerd-k3s.img", 2, "var/lib/rancher/k3s/agent/containerd", "k3s-web", false, "k3s-web", 0),
        ("containerd-k3s.img", 2, "var/lib/rancher/k3s/agent/containerd", "docker.io/example/web:1.0", true, "k3s-web", 1),
    ])
    func exportMatchesKernel(disk: String, partition: Int, containerdRoot: String, reference: String, image: Bool,
                             mounts: String, drop: Int) throws {
        let facts = try ContainerdFacts.load()
        let path = try TestImages.path(disk)
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (result, exported) = try DockerScratch.export(reference, image: image, of: path, into: dir)
        #expect(!exported.contains { $0.type == "characterDevice" && $0.rdev == [0, 0] })
        #expect(!exported.contains { $0.path.contains(".wh.") })
        guard TestImages.canLoopMount("ext4"), TestImages.canLoopMount("overlay") else { return }
        let (kernel, layerCount) = try DockerScratch.kernelOverlay(of: path, partition: partition, in: dir) { data in
            Array(try facts.snapshotDirectories(mounts, root: data + "/" + containerdRoot).dropFirst(drop))
        }
        #expect(result.layers == layerCount)
        let diffs = Manifest.differences(expected: kernel, actual: exported)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        #expect(kernel.count == exported.count)
        if !image && disk == "containerd-root.img" {
            #expect(exported.contains { $0.path == ".dockerenv" })
        }
    }

    /// With every snapshot directory gone, an image export reads the content store's layer blobs
    /// (gzip, plain, zstd tar); it equals the kernel's overlay mount of the intact disk's
    /// snapshots except the root directory itself (no tar entry for it: mode 0755, time 0).
    @Test("Image exports from the layer blobs (snapshots gone) equal the kernel's view of the snapshots",
          arguments: [("docker.io/example/web:1.0", "web"), ("docker.io/example/job:2.0", "job"), ("example/multi:1", "web")])
    func imageExportFromBlobs(reference: String, mounts: String) throws {
        let facts = try ContainerdFacts.load()
        let intact = try TestImages.path("containerd-root.img")
        let dir = try DockerScratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("export.tar").path
        let result = try Disk(path: try TestImages.path("containerd-root-nosnap.img"))
            .export(.of(reference, image: true, to: out))
        #expect(result.problems.isEmpty, "\(result.problems)")
        #expect(result.layers == 2)
        let exported = try DockerScratch.tarManifest(out).filter { $0.path != "." }
        guard TestImages.canLoopMount("ext4"), TestImages.canLoopMount("overlay") else { return }
        let kernel = try DockerScratch.kernelOverlay(of: intact, partition: 3, in: dir) { data in
            Array(try facts.snapshotDirectories(mounts, root: data + "/docker/containerd/daemon").dropFirst(2))
        }.manifest.filter { $0.path != "." }
        let diffs = Manifest.differences(expected: kernel, actual: exported)
        #expect(diffs.isEmpty, "\(diffs.joined(separator: "\n"))")
        #expect(kernel.count == exported.count)
    }
}
