import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// `fwassemble assemble` on the realistic disks: the archive, read back with Python's tarfile
/// (images/tar_manifest.py), against the booted namespace the kernel builds from the same plan
/// (loop mounts and bind mounts, as root), plus penguin's conventions, hardlink identity across
/// binds, the Docker data-root's whiteouts/opaque dirs/capabilities, determinism, gzip integrity,
/// the report, and no output left by a killed or failing run.
@Suite(.enabled(if: CLI.path != nil, "fwassemble binary not built"))
struct AssembleEndToEndTests {

    static let disks = ["haos-full.img", "haos-slotb.img", "haos-mbr-full.img", "rpi-full.img"]

    /// Where the Docker data-root appears in each disk's namespace (its first path in sorted order).
    static func dockerRoot(_ image: String) -> String {
        image.hasPrefix("rpi") ? "var/lib/docker" : "mnt/data/docker"
    }

    struct Assembled {
        var image: String
        var archive: String
        var plan: Plan
        var entries: [ManifestEntry]
        var byPath: [String: ManifestEntry]
    }

    static func assemble(_ image: String, in scratch: ScratchDir, name: String = "out.rootfs.tar.gz") throws -> Assembled {
        let path = try TestImages.path(image)
        let archive = scratch.path + "/" + name
        let r = try CLI.run(["assemble", path, "-o", archive, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let plan = try Disk(path: path).plan()
        let entries = try TarView.manifest(archive)
        return Assembled(image: path, archive: archive, plan: plan, entries: entries,
                         byPath: Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a }))
    }

    @Test(arguments: disks)
    func archiveFollowsPenguinsContract(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch)
        try TestImages.run(["python3", TarView.script, "--check", a.archive])
        let members = try TarView.members(a.archive)
        // Names exactly as stored, from GNU tar (Python's tarfile strips a directory's trailing "/").
        let raw = String(decoding: try TestImages.run(["tar", "-tzf", a.archive]), as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        try #require(raw.count == members.count)
        #expect(raw.first == "./")
        for (name, m) in zip(raw, members) {
            #expect(name.hasPrefix("./"), "\(name)")
            #expect(m.uname.isEmpty && m.gname.isEmpty, "\(name): uname \(m.uname) gname \(m.gname)")
            #expect((m.type == "5") == name.hasSuffix("/"), "\(name): type \(m.type)")
            #expect(!(name.hasPrefix("./igloo/") || name.hasPrefix("./nix/")))
        }
        #expect(Set(raw).count == raw.count, "no duplicate members")
        try TestImages.run(["gzip", "-t", a.archive])
        try TestImages.run(["pigz", "-t", a.archive])
    }

    /// The kernel's own namespace (as root), manifest by manifest, every field but `link`; then
    /// hardlink identity on the archive alone.
    @Test(.enabled(if: ["erofs", "squashfs", "ext4"].allSatisfy(TestImages.canLoopMount), "needs root and loop mounts"),
          arguments: disks + ["debian-gpt.img", "mender.img"])
    func archiveEqualsKernelNamespace(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch)
        let inspection = try Disk(path: a.image).inspect()
        let kernel = try KernelNamespace(image: a.image, plan: a.plan, inspection: inspection)
        defer { kernel.unmount() }
        let expected = try kernel.manifest()
        let actual = a.entries.filter { !kernel.isExcluded($0.path) }
        #expect(expected.count > (image.hasPrefix("haos") || image.hasPrefix("rpi") ? 100 : 20))
        let diffs = Manifest.differences(expected: expected, actual: actual, ignoring: [.links])
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
        // The vfat boot partition (not loop-mountable here) is in the archive all the same.
        for ex in kernel.excluded {
            let rel = String(ex.dropFirst())
            #expect(a.byPath[rel]?.type == "directory")
            #expect(a.entries.contains { $0.path.hasPrefix(rel + "/") })
        }
    }

    /// One inode, one entry: everything seen through a bind is a hardlink to its first path.
    @Test(arguments: disks)
    func bindsAreHardlinksToTheirSource(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch)
        var checked = 0
        for m in a.plan.mounts where m.kind == .bind {
            let what = String(try #require(m.what).dropFirst()), target = String(m.where.dropFirst())
            for e in a.entries where e.type != "directory" && (e.path == what || e.path.hasPrefix(what + "/")) {
                let seen = target + e.path.dropFirst(what.count)
                let other = try #require(a.byPath[seen], "\(seen) missing (bind of \(e.path))")
                #expect(e.link != nil && other.link == e.link, "\(seen) is not a hardlink to \(e.path)")
                checked += 1
            }
        }
        if image.hasPrefix("haos") { #expect(checked > 50) }
        // Every /var/lib/docker member of HAOS names its /mnt/data/docker twin.
        if image.hasPrefix("haos") {
            let members = try TarView.members(a.archive)
            let byName = Dictionary(members.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for m in members where m.name.hasPrefix("./var/lib/docker/") && m.type != "5" {
                let twinName = "./mnt/data/docker/" + m.name.dropFirst("./var/lib/docker/".count)
                let twin = try #require(byName[twinName])
                // The twin is the inode's first path, or itself a hardlink to it (in-layer hardlinks).
                let first = twin.type == "1" ? twin.linkname : twin.name
                #expect(m.type == "1" && m.linkname == first, "\(m.name) -> \(m.linkname), expected \(first)")
            }
            // The root's own /var/lib/docker content is hidden by the bind.
            #expect(a.byPath["var/lib/docker/.root-only"] == nil)
            #expect(a.byPath["var/log/journal/root-only"] == nil)
        }
    }

    /// The Docker data-root travels as files: whiteouts stay 0:0 char devices, the opaque xattr
    /// stays an xattr, file capabilities and in-layer/cross-layer hardlinks are kept.
    @Test(arguments: disks)
    func dockerDataRootKeptAsFiles(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch)
        let root = Self.dockerRoot(image)
        let inDocker = a.entries.filter { $0.path.hasPrefix(root + "/overlay2/") }
        let whiteouts = inDocker.filter { $0.path.hasSuffix("/diff/etc/motd") && $0.type == "characterDevice" }
        #expect(whiteouts.count == 1 && whiteouts.first?.rdev == [0, 0])
        #expect(inDocker.filter { $0.path.hasSuffix("/diff/etc/os-release") && $0.type == "characterDevice" }.count == 1)
        let opaque = inDocker.filter { $0.path.hasSuffix("/diff/etc/app") }
        #expect(opaque.filter { $0.xattrs["trusted.overlay.opaque"] == "79" }.count == 1)
        let ping = try #require(inDocker.first { $0.path.hasSuffix("/diff/usr/bin/ping") })
        #expect(ping.xattrs["security.capability"] == "0100000200200000000000000000000000000000")
        let shared = inDocker.filter { $0.path.hasSuffix("/diff/usr/lib/libshared.so") }
        #expect(shared.count == 2 && Set(shared.map(\.link)).count == 1 && shared[0].link != nil, "cross-layer hardlink")
        let sh = try #require(inDocker.first { $0.path.hasSuffix("/diff/bin/sh") })
        let busybox = try #require(inDocker.first { $0.path.hasSuffix("/diff/bin/busybox") })
        #expect(sh.link != nil && sh.link == busybox.link)
        // overlay2/l symlinks point at existing layer diffs.
        for l in inDocker where l.path.hasPrefix(root + "/overlay2/l/") {
            let target = try #require(l.target)
            #expect(a.byPath[root + "/overlay2/" + target.dropFirst(3)]?.type == "directory", "\(l.path) -> \(target)")
        }
        // The root filesystem's own file capability (make_tree's /usr/bin/ping).
        #expect(a.byPath["usr/bin/ping"]?.xattrs["security.capability"] == "0100000200200000000000000000000000000000")
    }

    @Test(arguments: ["haos-full.img", "haos-slotb.img", "haos-mbr-full.img"])
    func haosFileBindsShowTheOverlay(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch)
        func content(_ path: String) throws -> String {
            String(decoding: try TestImages.run(["tar", "-xzOf", a.archive, "./" + path]), as: UTF8.self)
        }
        #expect(try content("etc/hostname") == "homeassistant\n")
        #expect(try content("etc/hosts") == "127.0.0.1 localhost\n127.0.1.1 homeassistant\n")
        #expect(a.byPath["etc/hostname"]?.mtime == 1700000100, "the overlay's file, not the root's")
        #expect(a.byPath["root/.ssh"]?.perm == 0o700)
        #expect(a.byPath["root/.ssh/authorized_keys"]?.perm == 0o600)
        #expect(a.byPath["etc/NetworkManager/system-connections/my-wifi.nmconnection"]?.perm == 0o600)
        #expect(a.byPath["etc/modules-load.d/usb.conf"] != nil && a.byPath["etc/modules-load.d/root.conf"] == nil)
        #expect(a.byPath["etc/localtime"]?.target == "/mnt/overlay/etc/localtime")
        #expect(a.byPath["mnt/overlay/etc/localtime"]?.target == "/usr/share/zoneinfo/Europe/Amsterdam")
        #expect(a.byPath["mnt/data/supervisor/homeassistant/configuration.yaml"] != nil)
        // GRUB boards keep grubenv on the boot partition; U-Boot boards (MBR layout) do not.
        #expect(a.byPath["mnt/boot/EFI/BOOT/grubenv"]?.size == (image.contains("mbr") ? nil : 1024))
        #expect(a.byPath["mnt/boot/cmdline.txt"] != nil)
        // Volatile /var and /tmp were not applied: the root's own content stays.
        #expect(a.byPath["var/empty/nobody.txt"]?.uid == 65534)
        #expect(a.byPath["tmp"]?.perm == 0o1777)
        // Slot B's kernel/root never appear as mounts; setuid survives.
        #expect(a.byPath["bin/su"]?.perm == 0o4755)
    }

    @Test(arguments: disks)
    func twoRunsAreByteIdentical(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch, name: "one.rootfs.tar.gz")
        let b = try Self.assemble(image, in: scratch, name: "two.rootfs.tar.gz")
        let x = try Data(contentsOf: URL(fileURLWithPath: a.archive))
        let y = try Data(contentsOf: URL(fileURLWithPath: b.archive))
        #expect(x == y)
        // The facade with 1, 2 and 8 threads writes the same bytes as the CLI on all cores.
        for threads in [1, 2, 8] {
            let c = scratch.path + "/threads-\(threads).rootfs.tar.gz"
            var request = AssembleRequest()
            request.output = OutputRequest(threads: threads, output: c)
            _ = try Disk(path: a.image).assemble(request)
            #expect(try Data(contentsOf: URL(fileURLWithPath: c)) == x, "\(threads) threads")
        }
        // `-o -` streams the same bytes to stdout.
        let piped = try ScratchDir()
        let r = try CLI.run(["assemble", a.image, "-o", "-", "--quiet"], cwd: piped.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == x)
    }

    @Test(arguments: disks)
    func reportHasPerPartitionCounts(_ image: String) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch)
        let data = try Data(contentsOf: URL(fileURLWithPath: a.archive + ".report.json"))
        let report = try JSONDecoder().decode(AssembleReport.self, from: data)
        #expect(report.plan == a.plan)
        let planned = Set(a.plan.mounts.compactMap { $0.partition.map { "partition \($0)" } })
        #expect(Set(report.partitions.map(\.origin)) == planned)
        #expect(report.partitions.allSatisfy { $0.entries > 0 })
        // members counts every tar member (the archive's own count), files and hardlinks by type.
        let members = try TarView.members(a.archive)
        #expect(report.members == members.count)
        #expect(report.hardlinks == members.filter { $0.type == "1" }.count)
        #expect(report.files == members.filter { $0.type == "0" }.count)
        let firstCopies = a.entries.filter { $0.type == "regular" && ($0.link == nil || $0.link == $0.path) }
        #expect(report.contentBytes == firstCopies.reduce(0) { $0 + ($1.size ?? 0) })
    }

    /// SIGKILL while the archive is being written: neither the target nor a temporary file is left.
    @Test func killedRunLeavesNoOutput() throws {
        let scratch = try ScratchDir()
        let image = try TestImages.path("haos-full.img")
        let target = scratch.path + "/killed.rootfs.tar.gz"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(CLI.path))
        process.arguments = ["assemble", image, "-o", target, "--quiet", "--level", "9", "--threads", "1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the run has written more than 64 KiB of archive (/proc/PID/io wchar), then kill.
        var sawTemporary = false
        for _ in 0..<20_000 where process.isRunning {
            let io = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/io", encoding: .utf8)) ?? ""
            let written = io.split(separator: "\n").first { $0.hasPrefix("wchar:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? 0
            if written > 65536 {
                sawTemporary = true
                break
            }
            usleep(200)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try #require(sawTemporary && process.terminationReason == .uncaughtSignal, "the run finished before it could be killed")
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(!FileManager.default.fileExists(atPath: target + ".report.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
    }

    /// A write error half-way (a 256 KiB tmpfs fills up): exit 1, no output, no temporary file.
    @Test(.enabled(if: getuid() == 0, "needs root to mount a tmpfs"))
    func fullDiskLeavesNoOutput() throws {
        let scratch = try ScratchDir()
        let small = scratch.path + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        try TestImages.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small])
        defer { _ = try? TestImages.run(["umount", small]) }
        let target = small + "/full.rootfs.tar"
        let r = try CLI.run(["assemble", try TestImages.path("haos-full.img"), "-o", target, "--quiet", "--compression", "none"])
        #expect(r.status == 1)
        #expect(!r.stderr.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: small).isEmpty, "no output, no temporary file")
    }
}

/// The generic disks assemble too: debian-gpt (fstab partitions, a unit with a drop-in, noauto and
/// missing-source binds left alone, vfat mounted with umask=0077) and mender (slot B root).
@Suite(.enabled(if: CLI.path != nil, "fwassemble binary not built"))
struct GenericAssembleEndToEndTests {

    @Test func debianNamespace() throws {
        let scratch = try ScratchDir()
        let a = try AssembleEndToEndTests.assemble("debian-gpt.img", in: scratch)
        // /var is partition 3: the root's own /var/hidden is under the mount.
        #expect(a.byPath["var/hidden"] == nil && a.byPath["var/log/syslog"] != nil)
        #expect(a.byPath["home/alice/notes"]?.uid == 1000)
        #expect(a.byPath["srv/data/index.html"] != nil, "the /etc unit (PARTLABEL=data) won over /usr/lib's")
        #expect(!a.entries.contains { $0.path.hasPrefix("mnt/backup/") || $0.path.hasPrefix("srv/www/") || $0.path.hasPrefix("mnt/masked/") })
        // vfat with umask=0077, as Linux shows it: directories and files 0700 (no showexec).
        #expect(a.byPath["boot/efi"]?.perm == 0o700)
        #expect(a.byPath["boot/efi/EFI/debian"]?.perm == 0o700)
        #expect(a.byPath["boot/efi/EFI/debian/shimx64.efi"]?.perm == 0o700)
    }

    @Test func menderBootsSlotB() throws {
        let scratch = try ScratchDir()
        let a = try AssembleEndToEndTests.assemble("mender.img", in: scratch)
        let info = String(decoding: try TestImages.run(["tar", "-xzOf", a.archive, "./etc/mender/artifact_info"]), as: UTF8.self)
        #expect(info == "artifact_name=release-2.0\n")
        #expect(a.byPath["uboot/uboot.env"] != nil && a.byPath["data/mender/device_type"] != nil)
        // vfat with the default umask (0022): 0755 everywhere.
        #expect(a.byPath["uboot/cmdline.txt"]?.perm == 0o755)
    }
}
