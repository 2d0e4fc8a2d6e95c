import FirmwareAssembler
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A private sparse copy of a test disk whose ext4 data partition is changed with `debugfs -w`
/// (the containerd and Podman stores the recipes made with the real daemons, then damaged).
struct MutatedDisk {
    let dir: URL
    let path: String
    let offset: UInt64

    init(_ name: String, partition: Int = 3) throws {
        dir = try DockerScratch.directory()
        path = dir.appendingPathComponent(name).path
        try TestImages.run(["cp", "--sparse=always", try TestImages.path(name), path])
        offset = try DockerScratch.partitionOffset(path, partition)
    }

    var device: String { "\(path)?offset=\(offset)" }

    func remove() { try? FileManager.default.removeItem(at: dir) }

    /// Runs debugfs commands (one a line) on the partition, writable.
    func debugfs(_ commands: [String]) throws {
        let file = dir.appendingPathComponent("debugfs.cmd")
        try commands.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try TestImages.run(["debugfs", "-w", "-f", file.path, device])
        try FileManager.default.removeItem(at: file)
    }

    func cat(_ file: String) throws -> [UInt8] { Array(try TestImages.run(["debugfs", "-R", "cat \(file)", device])) }

    /// Replaces a file's content (a new inode under the same name).
    func replace(_ file: String, with bytes: [UInt8]) throws {
        let local = dir.appendingPathComponent("new-content")
        try Data(bytes).write(to: local)
        let parent = (file as NSString).deletingLastPathComponent, name = (file as NSString).lastPathComponent
        try debugfs(["cd \(parent)", "rm \(name)", "write \(local.path) \(name)"])
        try FileManager.default.removeItem(at: local)
    }

    /// The files left in the copy's folder besides the disk.
    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != (path as NSString).lastPathComponent }.sorted()
    }
}

/// `fwassemble docker` on damaged containerd and Podman stores (issue 22): no signal, no hang
/// (each run under 10 s), exit 1 naming the problem, nothing left behind.
@Suite("Hostile container stores through the CLI", .enabled(if: FwassembleCLI.path != nil))
struct HostileStoreTests {
    static let content = "/docker/containerd/daemon/io.containerd.content.v1.content/blobs/sha256"

    /// Runs the binary with its own TMPDIR (checked empty afterwards) and checks it ended by
    /// itself within 10 s.
    static func run(_ arguments: [String], tmp: String? = nil) throws -> FwassembleCLI.Result {
        let clock = ContinuousClock()
        let start = clock.now
        let r = try FwassembleCLI.run(arguments, environment: tmp.map { ["TMPDIR": $0] } ?? [:])
        #expect(clock.now - start < .seconds(10), "\(arguments) took \(clock.now - start)")
        #expect(!r.signalled, "\(arguments) ended by signal \(r.status): \(r.stderr)")
        return r
    }

    /// The layer blob digests of an image of the copy, bottom first, read from its content store.
    static func layerBlobs(_ disk: MutatedDisk, target: String) throws -> [String] {
        func json(_ digest: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(try disk.cat("\(content)/\(digest.dropFirst(7))"))) as? [String: Any])
        }
        var manifest = try json(target)
        if let list = manifest["manifests"] as? [[String: Any]] {
            let chosen = try #require(list.first { ($0["platform"] as? [String: Any])?["os"] as? String != "unknown" })
            manifest = try json(try #require(chosen["digest"] as? String))
        }
        return try #require(manifest["layers"] as? [[String: Any]]).compactMap { $0["digest"] as? String }
    }

    /// An image export from the content store of containerd-root-nosnap (no snapshot
    /// directories: the export reads the blobs) after `damage`, with its result and the disk.
    static func exportFromBlobs(_ damage: (MutatedDisk, [String]) throws -> Void, options: [String] = [],
                                tmp: ((MutatedDisk) throws -> String?)? = nil) throws -> (FwassembleCLI.Result, MutatedDisk, [String]) {
        let disk = try MutatedDisk("containerd-root-nosnap.img")
        let web = try #require(try Disk(path: disk.path).docker().dataRoots.first?.images.first { $0.tags.contains("docker.io/example/web:1.0") })
        let blobs = try layerBlobs(disk, target: web.id)
        try damage(disk, blobs)
        let out = disk.dir.appendingPathComponent("web.tar").path
        let tmpdir = try tmp?(disk)
        let r = try run(["docker", disk.path, "--export-image", "docker.io/example/web:1.0", "-o", out] + options, tmp: tmpdir)
        #expect(!FileManager.default.fileExists(atPath: out), "a failed export left its output")
        if let tmpdir { #expect(try FileManager.default.contentsOfDirectory(atPath: tmpdir).isEmpty) }
        return (r, disk, blobs)
    }

    @Test("A tampered layer blob fails --export-image (exit 1, the layer named, no output); --json still lists it")
    func tamperedBlob() throws {
        let (r, disk, blobs) = try Self.exportFromBlobs { disk, blobs in
            var bytes = try disk.cat("\(Self.content)/\(blobs[0].dropFirst(7))")
            bytes[bytes.count / 2] ^= 0x01
            try disk.replace("\(Self.content)/\(blobs[0].dropFirst(7))", with: bytes)
        }
        defer { disk.remove() }
        #expect(r.status == 1)
        #expect(r.stderr.contains("layer 1 (blob \(blobs[0]))") && r.stderr.contains("not the digest it is named by"), "\(r.stderr)")
        let json = try Self.run(["docker", disk.path, "--json"])
        #expect(json.stdoutText.contains("\(blobs[0].dropFirst(7)): content is sha256:"), "\(json.stdoutText)")
        #expect(try disk.leftovers() == [])
    }

    @Test("A layer tar cut inside a header fails --export-image naming the layer; --json lists it")
    func truncatedLayer() throws {
        let (r, disk, blobs) = try Self.exportFromBlobs { disk, blobs in
            let file = "\(Self.content)/\(blobs[1].dropFirst(7))"
            try disk.replace(file, with: Array(try disk.cat(file).prefix(700)))
        }
        defer { disk.remove() }
        #expect(r.status == 1)
        #expect(r.stderr.contains("layer 2 (blob \(blobs[1]))"), "\(r.stderr)")
        let json = try Self.run(["docker", disk.path, "--json"])
        #expect(json.stdoutText.contains("\(blobs[1].dropFirst(7)): content is sha256:"), "\(json.stdoutText)")
    }

    @Test("--max-layer-size bounds a layer's decompression (exit 1, the option named); 0 is refused")
    func maxLayerSize() throws {
        let (r, disk, _) = try Self.exportFromBlobs({ _, _ in }, options: ["--max-layer-size", "1000"])
        defer { disk.remove() }
        #expect(r.status == 1)
        #expect(r.stderr.contains("layer 1") && r.stderr.contains("--max-layer-size 1000"), "\(r.stderr)")
        let zero = try Self.run(["docker", disk.path, "--export-image", "x", "-o", disk.dir.appendingPathComponent("x.tar").path, "--max-layer-size", "0"])
        #expect(zero.status != 0 && zero.stderr.contains("--max-layer-size"), "\(zero.stderr)")
        let listing = try Self.run(["docker", disk.path, "--max-layer-ratio", "5"])
        #expect(listing.status != 0 && listing.stderr.contains("only for --export"), "\(listing.stderr)")
    }

    @Test("A TMPDIR without room: 'no space left on device' naming the folder, not a missing snapshot",
          .enabled(if: getuid() == 0))
    func noSpace() throws {
        var mounted: String?
        let (r, disk, _) = try Self.exportFromBlobs({ _, _ in }) { disk in
            let tiny = disk.dir.appendingPathComponent("tiny").path
            try FileManager.default.createDirectory(atPath: tiny, withIntermediateDirectories: true)
            guard (try? TestImages.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tiny])) != nil else { return nil }
            mounted = tiny
            return tiny
        }
        defer {
            if let mounted { _ = try? TestImages.run(["umount", mounted]) }
            disk.remove()
        }
        guard let mounted else { return }   // mount not permitted here: nothing to check
        #expect(r.status == 1)
        #expect(r.stderr.contains("no space left on device in \(mounted)") && !r.stderr.contains("does not exist"), "\(r.stderr)")
    }

    /// containerd-root.img with `docker/containerd/daemon` moved to `docker/containerd/real` and a
    /// symlink `daemon -> target` in its place.
    static func linkedDaemon(_ target: String) throws -> MutatedDisk {
        let disk = try MutatedDisk("containerd-root.img")
        try disk.debugfs(["ln /docker/containerd/daemon /docker/containerd/real", "unlink /docker/containerd/daemon",
                          "symlink /docker/containerd/daemon \(target)"])
        return disk
    }

    @Test("A containerd root reached through a symlink inside the data-root's filesystem is read as the real one",
          arguments: ["real", "/mnt/data/docker/containerd/real"])
    func symlinkedContainerdRoot(target: String) throws {
        let disk = try Self.linkedDaemon(target)
        defer { disk.remove() }
        let r = try Self.run(["docker", disk.path, "--json"])
        #expect(r.status == 0)
        let root = try #require(try Disk(path: disk.path).docker().dataRoots.first)
        #expect(root.store == "containerd" && root.containers.count == 2 && root.images.count == 2, "\(root.store) \(root.integrity.problems)")
        #expect(root.integrity.ok, "\(root.integrity.problems)")
        let out = disk.dir.appendingPathComponent("web.tar").path
        let export = try Self.run(["docker", disk.path, "--export", "web", "-o", out])
        #expect(export.status == 0, "\(export.stderr)")
    }

    @Test("A containerd root symlink leaving the filesystem (or dangling) is a problem, not an unknown clean store",
          arguments: ["/etc", "/nowhere", "../../../../etc"])
    func symlinkOutOfTheFilesystem(target: String) throws {
        let disk = try Self.linkedDaemon(target)
        defer { disk.remove() }
        let r = try Self.run(["docker", disk.path, "--json"])
        #expect(r.status == 0)
        let root = try #require(try Disk(path: disk.path).docker().dataRoots.first)
        #expect(!root.integrity.ok)
        #expect(root.integrity.problems.contains { $0.contains("containerd/daemon: is a symlink to \(target)") && $0.contains("not followed") },
                "\(root.integrity.problems)")
    }
}
