import FirmwareAssembler
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `ls`, `cat`, `stat`, `find` (and `Disk.tree`) on the realistic disks against the booted
/// namespace the kernel builds from the same plan (loop and bind mounts, as root; vfat subtrees
/// left out, as the kernel cannot mount them here).
@Suite(.enabled(if: CLI.path != nil && ["erofs", "squashfs", "ext4"].allSatisfy(TestImages.canLoopMount), "needs the binary, root and loop mounts"),
       .serialized)
struct BrowseEndToEndTests {
    static let disks = ["haos-full.img", "rpi-full.img", "debian-gpt.img"]

    struct Booted {
        var image: String
        var kernel: KernelNamespace
        var reference: [ManifestEntry]
    }

    static func boot(_ image: String) throws -> Booted {
        let path = try TestImages.path(image)
        let disk = try Disk(path: path)
        let kernel = try KernelNamespace(image: path, plan: try disk.plan(), inspection: try disk.inspect())
        return Booted(image: path, kernel: kernel, reference: try kernel.manifest())
    }

    /// "/a/b" as the manifest names it ("." for the root, "a/b" below it).
    static func relative(_ path: String) -> String { path == "/" ? "." : String(path.dropFirst()) }

    struct Line: Decodable {
        var path: String?, name: String?, type: String, mode: Int, uid: UInt32, gid: UInt32, size: UInt64
        var mtime: Int64, mtime_ns: UInt32, link: String?, device: [UInt32]?
    }

    static func lines(_ data: Data) throws -> [Line] {
        try String(decoding: data, as: UTF8.self).split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
    }

    @Test(arguments: disks)
    func findListsTheKernelsEntries(_ image: String) throws {
        let b = try Self.boot(image)
        defer { b.kernel.unmount() }
        let r = try CLI.run(["find", b.image, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let found = try Self.lines(r.stdout).filter { $0.type != "socket" && !b.kernel.isExcluded(Self.relative($0.path ?? "")) }
        #expect(found.map { Self.relative($0.path ?? "") } == b.reference.map(\.path))
        let byPath = Dictionary(found.map { (Self.relative($0.path ?? ""), $0) }, uniquingKeysWith: { a, _ in a })
        for e in b.reference {
            let f = try #require(byPath[e.path], "\(e.path) missing")
            #expect(f.type == e.type && f.mode == e.perm && f.uid == e.uid && f.gid == e.gid, "\(e.path)")
            #expect(f.mtime == e.mtime && f.mtime_ns == e.mtime_ns, "\(e.path)")
            if let size = e.size { #expect(f.size == size, "\(e.path)") }
            #expect(f.link == e.target, "\(e.path)")
            #expect(f.device == e.rdev, "\(e.path)")
        }
        // A subtree, filtered by type and name, is the reference's selection.
        let sub = try CLI.run(["find", b.image, "/etc", "--type", "f", "--name", "*.conf", "--json"])
        #expect(sub.status == 0, "\(sub.stderr)")
        let expected = b.reference.filter { $0.path.hasPrefix("etc/") && $0.type == "regular" && $0.path.hasSuffix(".conf") }.map(\.path)
        #expect(try Self.lines(sub.stdout).map { Self.relative($0.path ?? "") } == expected)
    }

    @Test(arguments: disks)
    func catAndReadGiveTheKernelsBytes(_ image: String) throws {
        let b = try Self.boot(image)
        defer { b.kernel.unmount() }
        let tree = try Disk(path: b.image).tree()
        let files = b.reference.filter { $0.type == "regular" }
        #expect(!files.isEmpty)
        for e in files {
            let expected = try Data(contentsOf: URL(fileURLWithPath: b.kernel.root + "/" + e.path))
            #expect(Data(try tree.read("/" + e.path)) == expected, "\(e.path)")
        }
        // The CLI, several paths at once, symlinks followed inside the namespace.
        let sample = files.enumerated().filter { $0.offset % max(1, files.count / 8) == 0 }.map(\.element.path)
        let r = try CLI.run(["cat", b.image] + sample.map { "/" + $0 })
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try sample.reduce(Data()) { $0 + (try Data(contentsOf: URL(fileURLWithPath: b.kernel.root + "/" + $1))) }
        #expect(r.stdout == expected)
        for link in b.reference.filter({ $0.type == "symlink" }).prefix(20) {
            let full = b.kernel.root + "/" + link.path
            guard let kernelBytes = FileManager.default.contents(atPath: full) else { continue }  // dangling, or not a file
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            #expect(Data(try tree.read("/" + link.path)) == kernelBytes, "\(link.path)")
        }
    }

    @Test(arguments: disks)
    func lsListsTheKernelsChildren(_ image: String) throws {
        let b = try Self.boot(image)
        defer { b.kernel.unmount() }
        let tree = try Disk(path: b.image).tree()
        let directories = b.reference.filter { $0.type == "directory" && !b.kernel.isExcluded($0.path) }
        for d in directories {
            let full = d.path == "." ? b.kernel.root : b.kernel.root + "/" + d.path
            let expected = try FileManager.default.contentsOfDirectory(atPath: full).map { Array($0.utf8) }
                .sorted { $0.lexicographicallyPrecedes($1) }.map { String(decoding: $0, as: UTF8.self) }
            let path = d.path == "." ? "/" : "/" + d.path
            #expect(try tree.list(path).map(\.name) == expected, "\(path)")
        }
        let sample = directories.enumerated().filter { $0.offset % max(1, directories.count / 5) == 0 }.map(\.element)
        for d in sample {
            let path = d.path == "." ? "/" : "/" + d.path
            let r = try CLI.run(["ls", b.image, path, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Self.lines(r.stdout).compactMap(\.name) == (try tree.list(path).map(\.name)), "\(path)")
            let long = try CLI.run(["ls", b.image, path, "-l"])
            #expect(long.stdoutText.split(separator: "\n").count == (try tree.list(path).count))
        }
    }

    @Test(arguments: disks)
    func statGivesTheKernelsFields(_ image: String) throws {
        let b = try Self.boot(image)
        defer { b.kernel.unmount() }
        let tree = try Disk(path: b.image).tree()
        for e in b.reference where !b.kernel.isExcluded(e.path) && e.type != "socket" {
            let full = e.path == "." ? b.kernel.root : b.kernel.root + "/" + e.path
            var st = stat()
            try #require(lstat(full, &st) == 0)
            let s = try tree.stat(e.path == "." ? "/" : "/" + e.path)
            let m = s.metadata
            #expect(m.mode == UInt32(st.st_mode), "\(e.path)")
            #expect(m.uid == st.st_uid && m.gid == st.st_gid, "\(e.path)")
            #expect(m.linkCount == UInt32(st.st_nlink), "\(e.path): links \(m.linkCount) vs \(st.st_nlink)")
            #expect(m.mtime.seconds == Int64(st.st_mtim.tv_sec) && Int(m.mtime.nanoseconds) == st.st_mtim.tv_nsec, "\(e.path)")
            if m.type == .regular || m.type == .symlink { #expect(m.size == UInt64(st.st_size), "\(e.path)") }
            if m.type == .characterDevice || m.type == .blockDevice {
                #expect(m.device == DeviceNumber(linux: UInt64(st.st_rdev)), "\(e.path)")
            }
            #expect(Dictionary(m.xattrs.map { ($0.name, $0.value.map { String(format: "%02x", $0) }.joined()) }, uniquingKeysWith: { a, _ in a }) == e.xattrs, "\(e.path)")
            if s.source.format == "ext4" { #expect(s.source.inode == UInt64(st.st_ino), "\(e.path)") }
            #expect(s.source.filesystem != nil || m.type == .directory, "\(e.path)")
        }
        // The CLI's document is the API's.
        let r = try CLI.run(["stat", b.image, "/etc/hostname", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let s = try tree.stat("/etc/hostname")
        #expect(json["size"] as? Int == Int(s.metadata.size))
        #expect((json["source"] as? [String: Any])?["origin"] as? String == s.source.origin)
    }

    /// OpenWrt's root is an overlay of rootfs_data's upper/ (ext4, layer 0) over the squashfs
    /// (layer 1): stat names the layer and the filesystem each file comes from, and a file from
    /// the squashfs is the squashfs partition's own file (same inode, same bytes).
    @Test func statNamesTheOverlayLayer() throws {
        let image = try TestImages.path("openwrt.img")
        let disk = try Disk(path: image)
        let tree = try disk.tree()
        let lower = try disk.tree(BrowseRequest(partition: "2"))
        var seen: Set<Int> = []
        var walk = try tree.walk("/etc")
        while let e = walk.next() {
            guard e.metadata.type == .regular else { continue }
            let s = try tree.stat(e.path)
            #expect(s.source.layers == 2, "\(e.path)")
            let layer = try #require(s.source.layer, "\(e.path)")
            seen.insert(layer)
            #expect(s.source.format == (layer == 0 ? "ext4" : "squashfs"), "\(e.path)")
            if layer == 1 {
                #expect(try lower.stat(e.path).metadata.inode == s.metadata.inode, "\(e.path)")
                #expect(try lower.read(e.path) == (try tree.read(e.path)), "\(e.path)")
            }
        }
        #expect(seen == [0, 1])
    }

    /// The warnings `ls` prints are assemble's (the same codes and texts), before any walk.
    @Test func warningsAreAssemblesDiagnostics() throws {
        let image = try TestImages.path("debian-gpt.img")
        let scratch = try ScratchDir()
        let a = try CLI.run(["assemble", image, "-q", "--compression", "none", "-o", scratch.path + "/d.tar"])
        #expect(a.status == 0, "\(a.stderr)")
        struct Report: Decodable { var diagnostics: [RunWarning] }
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: scratch.path + "/d.tar.report.json")))
        let expected = report.diagnostics.filter { $0.code != .walk && $0.code != .readError }
        #expect(!expected.isEmpty)
        #expect(try Disk(path: image).tree().warnings == expected)
        let ls = try CLI.run(["ls", image])
        #expect(ls.status == 0)
        #expect(ls.stderr.split(separator: "\n").map(String.init) == expected.map { "warning: " + $0.text })
    }

    @Test func missingPathsAndUsage() throws {
        let image = try TestImages.path("haos-full.img")
        let missing = try CLI.run(["cat", image, "/no/such/file"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/no/such/file") && missing.stderr.contains("no such file"), "\(missing.stderr)")
        let directory = try CLI.run(["cat", image, "/etc"])
        #expect(directory.status == 1 && directory.stderr.contains("is a directory"), "\(directory.stderr)")
        // As cat(1): the paths that can be read are written, the others named; exit 1.
        let some = try CLI.run(["cat", image, "/etc/hostname", "/nope", "/etc/hostname"])
        let hostname = try CLI.run(["cat", image, "/etc/hostname"]).stdout
        #expect(some.status == 1 && some.stdout == hostname + hostname && some.stderr.contains("/nope"), "\(some.stderr)")
        // FAT names resolve case-insensitively, as the kernel's vfat does.
        let fat = try CLI.run(["cat", image, "/mnt/boot/efi/boot/GRUBENV"])
        let stored = try CLI.run(["cat", image, "/mnt/boot/EFI/BOOT/grubenv"]).stdout
        #expect(fat.status == 0 && fat.stdout == stored, "\(fat.stderr)")
        #expect(!fat.stdout.isEmpty)
        let both = try CLI.run(["ls", image, "--root", "3", "--partition", "3"])
        #expect(both.status == 2, "\(both.stderr)")
        let badType = try CLI.run(["find", image, "--type", "x"])
        #expect(badType.status == 2)
        // Symlinks never leave the namespace: ".." stops at its root.
        let tree = try Disk(path: image).tree()
        #expect(try tree.list("/../../..").map(\.name) == (try tree.list("/").map(\.name)))
        // --partition looks at one filesystem.
        let part = try CLI.run(["ls", image, "--partition", "8"])
        #expect(part.status == 0 && part.stdoutText.contains("docker"), "\(part.stdoutText) \(part.stderr)")
    }
}
