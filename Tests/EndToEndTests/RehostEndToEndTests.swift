import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// The rehosting round trip (issue 18, docs/rehosting.md): `--format ext4` against the kernel's
/// namespace, penguin's own conversion recipe (pigz -dc, tarfile append, mke2fs -d) against the
/// archive, and `--hardlinks copy` read by Python's tarfile.
@Suite(.enabled(if: CLI.path != nil, "fwassemble binary not built"))
struct RehostEndToEndTests {
    /// mke2fs >= 1.47.1, unpacked by images/fetch-e2fsprogs.sh (make test runs it).
    static let e2fsprogs = TestImages.repositoryRoot.appendingPathComponent(".build-e2fsprogs/root").path
    static var newMke2fs: String? {
        let p = e2fsprogs + "/sbin/mke2fs"
        return FileManager.default.isExecutableFile(atPath: p) ? p : nil
    }
    static let canMount = getuid() == 0 && ["erofs", "squashfs", "ext4"].allSatisfy(TestImages.canLoopMount)

    /// An uncompressed tar like penguin's igloo files, made with Python's tarfile.
    static func iglooTar(_ path: String) throws {
        let code = """
        import io, sys, tarfile
        with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
            for name in ("igloo/", "igloo/boot/"):
                ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1700000000; t.addfile(ti)
            data = b"#!/igloo/boot/sh\\necho preinit\\n"
            ti = tarfile.TarInfo("igloo/boot/preinit"); ti.size = len(data); ti.mode = 0o755; ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
            ti = tarfile.TarInfo("igloo/boot/sh"); ti.type = tarfile.SYMTYPE; ti.linkname = "/igloo/boot/busybox"; ti.mtime = 1700000000
            t.addfile(ti)
        """
        try TestImages.run(["python3", "-c", code, path])
    }

    static func mounted<T>(_ image: String, _ body: (String) throws -> T) throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rehost-mnt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TestImages.run(["mount", "-o", "loop,ro", image, dir])
        defer { _ = try? TestImages.run(["umount", dir]) }
        return try body(dir)
    }

    /// `--format ext4` (with --add-tar), checked by e2fsck -fn and mounted by the kernel, equals
    /// the kernel-mounted namespace of the source disk in every field, every xattr included; the
    /// added members are there; two runs give the same bytes.
    @Test(.enabled(if: canMount, "needs root and loop mounts"), arguments: ["haos-full.img", "rpi-full.img", "haos-mbr-full.img"])
    func ext4ImageEqualsKernelNamespace(_ image: String) throws {
        let scratch = try ScratchDir()
        let path = try TestImages.path(image)
        let igloo = scratch.path + "/igloo.tar"
        try Self.iglooTar(igloo)
        let out = scratch.path + "/out.ext4"
        let r = try CLI.run(["assemble", path, "--format", "ext4", "-o", out, "--padding", "16", "--add-tar", igloo, "--quiet"])
        try #require(r.status == 0, "\(r.stderr)")
        try TestImages.run(["e2fsck", "-fn", out])
        let plan = try Disk(path: path).plan()
        let kernel = try KernelNamespace(image: path, plan: plan, inspection: try Disk(path: path).inspect())
        defer { kernel.unmount() }
        let expected = try kernel.manifest()
        let actual = try Self.mounted(out) { dir in
            try Manifest.ofDirectory(dir).filter {
                $0.type != "socket" && !kernel.isExcluded($0.path) && $0.path != "igloo" && !$0.path.hasPrefix("igloo/")
                    && !($0.path == "lost+found" && !expected.contains { e in e.path == "lost+found" })
            }
        }
        #expect(expected.count > 100)
        #expect(expected.contains { !$0.xattrs.isEmpty })
        let diffs = Manifest.differences(expected: expected, actual: actual, ignoring: [.links])
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
        let added = try Self.mounted(out) { dir in try Manifest.ofDirectory(dir).filter { $0.path.hasPrefix("igloo/") } }
        #expect(added.first { $0.path == "igloo/boot/preinit" }?.perm == 0o755)
        #expect(added.first { $0.path == "igloo/boot/sh" }?.target == "/igloo/boot/busybox")
        let again = scratch.path + "/again.ext4"
        _ = try CLI.run(["assemble", path, "--format", "ext4", "-o", again, "--padding", "16", "--add-tar", igloo, "--quiet"])
        #expect(FileManager.default.contentsEqual(atPath: out, andPath: again), "two runs differ")
    }

    /// penguin's gen_image on our archive: pigz -dc, igloo files appended with tarfile ("a"),
    /// mke2fs -t ext4 -N -d fs.tar (>= 1.47.1), mounted: equal to the archive in every field but
    /// the named loss (mke2fs's tar reader keeps security.capability only of the xattrs).
    @Test(.enabled(if: canMount && newMke2fs != nil, "needs root, loop mounts and images/fetch-e2fsprogs.sh"),
          arguments: ["haos-full.img", "rpi-full.img", "balena.img"])
    func penguinRecipeKeepsTheArchive(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = scratch.path + "/fs.rootfs.tar.gz"
        let r = try CLI.run(["assemble", try TestImages.path(image), "-o", a, "--quiet"])
        try #require(r.status == 0, "\(r.stderr)")
        let tar = scratch.path + "/fs.tar"
        try TestImages.run(["sh", "-c", "pigz -dc '\(a)' > '\(tar)'"])
        let append = """
        import io, sys, tarfile
        with tarfile.open(sys.argv[1], "a") as tf:
            ti = tarfile.TarInfo(name="igloo/"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; tf.addfile(ti)
            data = b"#!/bin/sh\\n"; ti = tarfile.TarInfo(name="igloo/preinit"); ti.size = len(data); ti.mode = 0o755
            tf.addfile(ti, io.BytesIO(data))
        """
        try TestImages.run(["python3", "-c", append, tar])
        let size = try FileManager.default.attributesOfItem(atPath: tar)[.size] as! UInt64
        let blocks = (size + (16 << 20) + 4095) / 4096 + 4096
        let img = scratch.path + "/image.raw"
        try TestImages.run(["truncate", "-s", "\(blocks * 4096)", img])
        try TestImages.run(["env", "LD_LIBRARY_PATH=\(Self.e2fsprogs)/lib/x86_64-linux-gnu", Self.newMke2fs!, "-q", "-t", "ext4",
                            "-N", "\(blocks * 4096 / 8192 + 1000)", "-d", tar, img])
        let archive = try TarView.manifest(a)
        let expected = archive.filter { $0.type != "socket" }.map { e -> ManifestEntry in
            var e = e
            e.xattrs = e.xattrs.filter { $0.key == "security.capability" }
            return e
        }
        let actual = try Self.mounted(img) { dir in
            try Manifest.ofDirectory(dir).filter { m in
                (!m.path.hasPrefix("igloo") && m.path != "lost+found") || archive.contains { $0.path == m.path }
            }
        }
        let diffs = Manifest.differences(expected: expected, actual: actual, ignoring: [.links])
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
        // The loss docs/rehosting.md names: the Docker layer's opaque directory mark.
        let lost = archive.filter { $0.xattrs.keys.contains("trusted.overlay.opaque") }
        if image.hasPrefix("haos") { #expect(!lost.isEmpty) }
        let kept = try Self.mounted(img) { dir in try Manifest.ofDirectory(dir) }
        for e in lost { #expect(kept.first { $0.path == e.path }?.xattrs["trusted.overlay.opaque"] == nil) }
    }

    /// `--hardlinks copy`: through Python's tarfile every path is a regular file with its content,
    /// but a file met again through a bind mount, which stays a link member to the path the
    /// bind's source shows; contents equal link mode's; the cost is in the report.
    @Test(arguments: ["haos-full.img", "rpi-full.img"])
    func copyModeWritesEveryHardlinkAsAFile(_ image: String) throws {
        let scratch = try ScratchDir()
        let path = try TestImages.path(image)
        let link = scratch.path + "/link.tar.gz", copy = scratch.path + "/copy.tar.gz"
        _ = try CLI.run(["assemble", path, "-o", link, "--quiet"])
        let r = try CLI.run(["assemble", path, "-o", copy, "--hardlinks", "copy", "--quiet"])
        try #require(r.status == 0, "\(r.stderr)")
        let binds = try Disk(path: path).plan().mounts.filter { $0.kind == .bind }.map { String($0.where.dropFirst()) }
        let code = """
        import hashlib, json, sys, tarfile
        out = {}
        with tarfile.open(sys.argv[1]) as t:
            for m in t:
                if not m.isdir():
                    f = t.extractfile(m) if m.isreg() or m.islnk() else None
                    out[m.name] = [m.type.decode(), m.linkname, hashlib.sha256(f.read()).hexdigest() if f else ""]
        print(json.dumps(out))
        """
        func view(_ a: String) throws -> [String: [String]] {
            try JSONDecoder().decode([String: [String]].self, from: try TestImages.run(["python3", "-c", code, a]))
        }
        let l = try view(link), c = try view(copy)
        #expect(l.keys.sorted() == c.keys.sorted())
        var copied = 0
        for (name, v) in c {
            #expect(v[2] == l[name]?[2], "\(name): content differs")
            let rel = String(name.dropFirst(2))
            let underBind = binds.contains { rel == $0 || rel.hasPrefix($0 + "/") }
            let target = String(v[1].dropFirst(2))
            let targetUnderBind = binds.contains { target == $0 || target.hasPrefix($0 + "/") }
            if v[0] == "1" { #expect(underBind || targetUnderBind, "\(name) is a link member, not met through a bind") }
            if l[name]?[0] == "1", v[0] != "1" { copied += 1 }
        }
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: copy + ".report.json"))) as! [String: Any]
        #expect(report["hardlink_mode"] as? String == "copy")
        #expect(report["copied_hardlinks"] as? Int == copied)
        #expect(copied > 0)
        let linkReport = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: link + ".report.json"))) as! [String: Any]
        #expect(linkReport["hardlink_mode"] == nil && linkReport["copied_bytes"] == nil)
    }
}
