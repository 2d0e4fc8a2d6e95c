import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// The balenaOS and OSTree profiles on disks built with real tools (images/disks/balena.sh,
/// ostree.sh): `Disk.plan()` lists exactly the booted device's mounts, and `fwassemble assemble`
/// writes the booted root (the hostapp overlay, the deployment) with the partitions and binds
/// around it, compared with the namespace the kernel builds from the same plan (loop mounts, a
/// real overlayfs, bind mounts).
@Suite(.enabled(if: CLI.path != nil, "fwassemble binary not built"))
struct ProfileEndToEndTests {
    struct BalenaIDs: Decodable { var container: String; var mount_id: String; var layers: [String]; var `init`: String }
    struct OSTreeIDs: Decodable { var os: String; var booted: String; var rollback: String }

    static func ids<T: Decodable>(_ name: String, _ type: T.Type) throws -> T {
        let disk = try TestImages.path(name.split(separator: ".").first.map { String($0) + ".img" } ?? name)
        let path = URL(fileURLWithPath: disk).deletingLastPathComponent().appendingPathComponent(name).path
        return try JSONDecoder().decode(T.self, from: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func line(_ m: PlannedMount) -> String {
        [m.where, m.kind.rawValue, m.partition.map(String.init) ?? "-", m.fstype ?? "-", m.options,
         m.what ?? m.lower.map { $0.joined(separator: ":") } ?? "-", m.declaredBy].joined(separator: " | ")
    }

    static func assemble(_ image: String, in scratch: ScratchDir) throws -> (path: String, archive: String, plan: Plan, entries: [ManifestEntry]) {
        let path = try TestImages.path(image)
        let archive = scratch.path + "/out.rootfs.tar.gz"
        let r = try CLI.run(["assemble", path, "-o", archive, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        return (path, archive, try Disk(path: path).plan(), try TarView.manifest(archive))
    }

    // MARK: balenaOS

    @Test func balenaPlanListsExactlyTheBootedMounts() throws {
        let ids = try Self.ids("balena.B.ids", BalenaIDs.self)
        let plan = try Disk(path: try TestImages.path("balena.img")).plan()
        let units = "/lib/systemd/system/"
        let reason = "/resinOS_uEnv.txt on partition 1 (resin-boot): resin_root_part=3"
        let lower = ids.layers.map { "/balena/overlay2/\($0)/diff" }.joined(separator: ":")
        func bind(_ target: String, _ unit: String) -> String {
            "\(target) | bind | - | - | bind | /mnt/state/root-overlay\(target) | \(units)\(unit).service"
        }
        let expected = [
            "/ | partition | 3 | ext4 |  | - | \(reason)",
            "/ | overlay | - | overlay | ro | \(lower) | balenaOS hostapp container \(ids.container) (/current -> hostapps/\(ids.container); "
                + "/balena/image/overlay2/layerdb/mounts/\(ids.container)/mount-id)",
            "/mnt/sysroot/active | partition | 3 | ext4 |  | - | balenaOS: the physical root partition after pivot_root into the hostapp",
            "/mnt/boot | partition | 1 | vfat |  | - | \(units)resin-boot.service",
            "/mnt/data | partition | 6 | ext4 |  | - | \(units)resin-data.service",
            "/resin-data | bind | - | - | bind | /mnt/data/resin-data | \(units)resin\\x2ddata.mount",
            "/mnt/state | partition | 5 | ext4 |  | - | \(units)resin-state.service",
            bind("/etc/docker", "bind-etc-docker"),
            bind("/etc/hostname", "bind-etc-hostname"),
            bind("/home/root/.ssh", "bind-home-root-.ssh"),
            bind("/var/lib/systemd", "bind-var-lib-systemd"),
            "/var/lib/docker | bind | - | - | bind | /mnt/data/docker | \(units)var-lib-docker.mount",
        ]
        #expect(plan.mounts.map(Self.line) == expected, "\(plan.mounts.map(Self.line).joined(separator: "\n"))")
        #expect(plan.root.partition == 3 && plan.root.reason == reason && plan.profile == "balenaos")
        #expect(plan.skipped.map { "\($0.where) | \($0.reason)" } == [
            "/etc/NetworkManager/system-connections | unit not enabled",
            "/mnt/sysroot/inactive | unit not enabled",
            "/proc | virtual proc",
            "/run | volatile tmpfs",
        ])
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
        // The -init layer is not a layer of the booted root.
        #expect(!lower.contains(ids.`init`))
        // The CLI's JSON is the same plan.
        let r = try CLI.run(["plan", "--json", try TestImages.path("balena.img")])
        #expect(r.status == 0)
        #expect(try JSONDecoder().decode(Plan.self, from: r.stdout) == plan)
    }

    @Test func balenaAssembleHasTheHostappStateAndData() throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble("balena.img", in: scratch)
        let by = Dictionary(a.entries.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        // The hostapp at /: rw layer over top layer over base layer; the -init layer left out.
        #expect(by["etc/rw-layer"]?.type == "regular")
        #expect(by["etc/issue"]?.size == UInt64("balenaOS 2.1.0\n".utf8.count))
        #expect(by["etc/os-release"]?.crc32 == CRC.of("ID=\"balena-os\"\nNAME=\"balenaOS\"\nVERSION=\"2.1.0\"\nVERSION_ID=\"2.1.0\"\n"))
        #expect(by[".dockerenv"] == nil && by["etc/resolv.conf"] == nil, "the -init layer is not part of the root")
        #expect(by["etc/motd"] == nil, "whited out by the top layer")
        #expect(by["usr/share/doc/balena/old.txt"] == nil && by["usr/share/doc/balena/new.txt"] != nil, "opaque directory")
        #expect(by["usr/share/doc/balena"]?.xattrs["trusted.overlay.opaque"] == nil, "overlay's own xattrs are not shown")
        let health = try #require(by["usr/bin/healthcheck"])
        #expect(health.perm == 0o4755 && health.uid == 1000 && health.gid == 1000)
        // Binds from the state partition and the data partition.
        #expect(by["etc/hostname"]?.crc32 == CRC.of("my-device\n"))
        #expect(by["etc/docker/daemon.json"] != nil && by["home/root/.ssh/authorized_keys"]?.perm == 0o600)
        #expect(by["var/lib/docker/repositories.json"] == nil && by["var/lib/docker/image/overlay2/repositories.json"] != nil)
        #expect(by["resin-data/app.txt"]?.crc32 == CRC.of("app state\n"))
        // The physical root (slot B) at /mnt/sysroot/active; the boot partition at /mnt/boot.
        #expect(by["mnt/sysroot/active/current"]?.target?.hasPrefix("hostapps/") == true)
        #expect(by["mnt/sysroot/active/balena/image/overlay2/layerdb/mounts"]?.type == "directory")
        #expect(by["mnt/boot/resinOS_uEnv.txt"] != nil)
        // A hostapp file and its layer's copy in the physical root are one inode.
        let ids = try Self.ids("balena.B.ids", BalenaIDs.self)
        let layerCopy = try #require(by["mnt/sysroot/active/balena/overlay2/\(ids.mount_id)/diff/etc/rw-layer"])
        #expect(layerCopy.link != nil && layerCopy.link == by["etc/rw-layer"]?.link)
        // Slot A's hostapp (2.0.0) is nowhere.
        let slotA = try Self.ids("balena.A.ids", BalenaIDs.self)
        #expect(!a.entries.contains { $0.path.contains(slotA.mount_id) })
    }

    @Test(.enabled(if: ["ext4", "overlay"].allSatisfy(TestImages.canLoopMount), "needs root, loop mounts and overlayfs"))
    func balenaArchiveEqualsKernelNamespace() throws {
        try Self.compareWithKernel("balena.img", minimum: 300)
    }

    // MARK: OSTree

    @Test func ostreePlanBindsTheBootedDeployment() throws {
        let ids = try Self.ids("ostree.ids", OSTreeIDs.self)
        let plan = try Disk(path: try TestImages.path("ostree.img")).plan()
        let deployment = "/ostree/deploy/\(ids.os)/deploy/\(ids.booted)"
        #expect(plan.profile == "ostree" && plan.root.partition == 1)
        let lines = plan.mounts.map(Self.line)
        #expect(lines.count == 6, "\(lines.joined(separator: "\n"))")
        #expect(lines.first == "/ | partition | 1 | ext4 |  | - | the only partition holding a Linux root")
        #expect(plan.mounts[1].kind == .bind && plan.mounts[1].where == "/" && plan.mounts[1].what == deployment)
        #expect(plan.mounts[1].declaredBy.hasPrefix("/boot/loader/entries/ostree-2-torizon.conf, version 2, first of 2 entries: ostree=/ostree/boot.1/torizon/"))
        #expect(Array(lines.dropFirst(2)) == [
            "/sysroot | partition | 1 | ext4 |  | - | OSTree: the physical root stays visible at /sysroot",
            "/boot | bind | - | - | bind | /sysroot/boot | OSTree: the physical root's /boot",
            "/var | bind | - | - | bind | /sysroot/ostree/deploy/torizon/var | OSTree: the shared /var of os torizon",
            "/mnt/extra | bind | - | - | bind | /var/extra | /usr/lib/systemd/system/mnt-extra.mount",
        ])
        #expect(plan.skipped.map { "\($0.where) | \($0.reason)" } == ["/proc | virtual proc", "/tmp | volatile tmpfs"])
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    @Test func ostreeAssembleHasTheDeploymentSysrootAndVar() throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble("ostree.img", in: scratch)
        let ids = try Self.ids("ostree.ids", OSTreeIDs.self)
        let by = Dictionary(a.entries.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        #expect(by["etc/hostname"]?.crc32 == CRC.of("apalis-imx8-6.1\n"))
        #expect(by["usr/bin/hello"]?.crc32 == CRC.of("#!/bin/sh\necho torizon 6.1\n"))
        #expect(by["boot/loader"]?.target == "loader.1")
        #expect(by["var/lib/docker/image/overlay2/repositories.json"] != nil)
        #expect(by["mnt/extra/data.txt"]?.crc32 == CRC.of("extra data in /var\n"))
        #expect(by["sysroot/ostree/deploy/torizon/deploy/\(ids.rollback)/etc/hostname"]?.crc32 == CRC.of("apalis-imx8-6.0\n"))
        // Deployment files are hardlinks into the repository, kept as one inode.
        let hello = try #require(by["usr/bin/hello"])
        let objects = a.entries.filter { $0.path.hasPrefix("sysroot/ostree/repo/objects/") && $0.type == "regular" && $0.link == hello.link }
        #expect(hello.link != nil && objects.count == 1, "\(hello)")
        let shared = try #require(by["usr/bin/shared"])
        #expect(by["sysroot/ostree/deploy/torizon/deploy/\(ids.rollback)/usr/bin/shared"]?.link == shared.link)
    }

    /// Docker's data-root in the shared /var, found through the /var bind (the bind at "/" that
    /// makes the deployment the root is no alias).
    @Test func dockerDataRootsOfTheProfiles() throws {
        let ostree = try Disk(path: try TestImages.path("ostree.img")).docker()
        #expect(ostree.dataRoots.map(\.path) == ["/sysroot/ostree/deploy/torizon/var/lib/docker"], "\(ostree.dataRoots.map(\.path))")
        #expect(ostree.dataRoots.first?.images.count == 2 && ostree.dataRoots.first?.containers.count == 2)
        let balena = try Disk(path: try TestImages.path("balena.img")).docker()
        #expect(balena.dataRoots.map(\.path) == ["/mnt/data/docker"], "\(balena.dataRoots.map(\.path))")
        #expect(balena.dataRoots.first?.foundVia.contains("/var/lib/docker") == true)
    }

    @Test(.enabled(if: TestImages.canLoopMount("ext4"), "needs root and loop mounts"))
    func ostreeArchiveEqualsKernelNamespace() throws {
        try Self.compareWithKernel("ostree.img", minimum: 100)
    }

    // MARK: OpenWrt

    @Test func openwrtPlanOverlaysRootfsDataOnTheSquashfs() throws {
        let path = try TestImages.path("openwrt.img")
        let offsetText = try String(contentsOfFile: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("openwrt.offset").path,
                                    encoding: .utf8)
        let offset = try #require(UInt64(offsetText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let plan = try Disk(path: path).plan()
        #expect(plan.profile == "openwrt" && plan.root.partition == 2 && plan.root.filesystem == "squashfs")
        let data = "OpenWrt: rootfs_data at byte \(offset) of partition 2 (the squashfs's size rounded up to 64 KiB)"
        #expect(plan.mounts.map(Self.line) == [
            "/ | partition | 2 | squashfs |  | - | the only partition holding a Linux root",
            "/rom | partition | 2 | squashfs |  | - | OpenWrt: the squashfs, lower layer of the root overlay",
            "/overlay | partition | 2 | ext4 |  | - | \(data)",
            "/ | overlay | - | overlay |  | /rom | OpenWrt mount_root: overlay of rootfs_data's upper/ over the squashfs",
            "/rom | partition | 2 | squashfs |  | - | OpenWrt: the squashfs after pivot_root",
            "/overlay | partition | 2 | ext4 |  | - | \(data)",
            "/boot | partition | 1 | ext4 |  | - | OpenWrt: the kernel partition at /boot",
            "/boot | bind | - | - | bind | /boot/boot | OpenWrt: the kernel partition's boot/ bound over /boot",
        ], "\(plan.mounts.map(Self.line).joined(separator: "\n"))")
        #expect(plan.mounts.filter { $0.fstype == "ext4" && $0.partition == 2 }.allSatisfy { $0.offset == offset })
        #expect(plan.mounts.first { $0.kind == .overlay }?.upper == "/overlay/upper")
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
        // The JSON carries the offset under its own key.
        let r = try CLI.run(["plan", "--json", path])
        #expect(String(decoding: r.stdout, as: UTF8.self).contains("\"offset\" : \(offset)"))
        #expect(try JSONDecoder().decode(Plan.self, from: r.stdout) == plan)
    }

    @Test func openwrtAssembleMergesTheUpperLayer() throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble("openwrt.img", in: scratch)
        let by = Dictionary(a.entries.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        #expect(by["etc/config/network"]?.crc32 == CRC.of("config interface lan\n\toption proto dhcp\n"))
        #expect(by["rom/etc/config/network"]?.crc32 == CRC.of("config interface loopback\n\toption proto static\n"))
        #expect(by["etc/banner"] == nil && by["rom/etc/banner"] != nil, "whited out by rootfs_data")
        #expect(by["overlay/upper/etc/banner"]?.rdev == [0, 0])
        #expect(by["www/index.html"]?.crc32 == CRC.of("<html>overlay</html>\n") && by["www/luci-static"] == nil, "opaque /www")
        #expect(by["usr/lib/opkg/info/tcpdump.control"] != nil && by["etc/openwrt_release"] != nil)
        #expect(by["boot/vmlinuz"] != nil && by["boot/grub/grub.cfg"] != nil && by["boot/boot"] == nil)
    }

    @Test(.enabled(if: ["ext4", "squashfs", "overlay"].allSatisfy(TestImages.canLoopMount), "needs root, loop mounts and overlayfs"))
    func openwrtArchiveEqualsKernelNamespace() throws {
        try Self.compareWithKernel("openwrt.img", minimum: 100)
    }

    // MARK: OpenWrt with an f2fs rootfs_data (images/disks/openwrt-f2fs.sh)

    @Test func openwrtF2FSPlanSaysWhereTheOverlayComesFrom() throws {
        let path = try TestImages.path("openwrt-f2fs.img")
        let offsetText = try String(contentsOfFile: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("openwrt-f2fs.offset").path,
                                    encoding: .utf8)
        let offset = try #require(UInt64(offsetText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let plan = try Disk(path: path).plan()
        let overlays = plan.mounts.filter { $0.where == "/overlay" }
        #expect(overlays.count == 2 && overlays.allSatisfy { $0.fstype == "f2fs" && $0.partition == 2 && $0.offset == offset })
        #expect(overlays.first?.declaredBy == "OpenWrt: rootfs_data at byte \(offset) of partition 2 (the squashfs's size rounded up to 64 KiB)")
        // UCI /etc/config/fstab: the uuid mount applied, the disabled one and the swap reported.
        let data = try #require(plan.mounts.first { $0.where == "/mnt/data" })
        #expect(data.partition == 3 && data.fstype == "ext4" && data.options == "ro" && data.declaredBy == "/etc/config/fstab:9")
        #expect(plan.skipped.map { "\($0.where): \($0.reason) (\($0.declaredBy ?? ""))" } == [
            "/mnt/old: disabled (option enabled '0') (/etc/config/fstab:15)",
            "swap: swap on /dev/sda4 (/etc/config/fstab:20)",
        ])
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    @Test func openwrtF2FSAssemblesToTheNamespaceOfItsExt4Twin() throws {
        let scratch = try ScratchDir()
        let f2fs = try Self.assemble("openwrt-f2fs.img", in: scratch)
        let twinScratch = try ScratchDir()
        let ext4 = try Self.assemble("openwrt-f2fs-twin.img", in: twinScratch)
        // The twins differ only in what their rootfs_data filesystems add themselves: ext4's
        // lost+found, and the root directory's time (sload.f2fs stamps it with the load time).
        func comparable(_ entries: [ManifestEntry]) -> [ManifestEntry] {
            entries.filter { !$0.path.hasPrefix("overlay/lost+found") }.map { e in
                var e = e
                if e.path == "overlay" { e.mtime = 0; e.mtime_ns = 0 }
                return e
            }
        }
        #expect(f2fs.entries.count > 100)
        let diffs = Manifest.differences(expected: comparable(ext4.entries), actual: comparable(f2fs.entries))
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
        let by = Dictionary(f2fs.entries.map { ($0.path, $0) }, uniquingKeysWith: { x, _ in x })
        #expect(by["etc/config/network"]?.crc32 == CRC.of("config interface lan\n\toption proto dhcp\n"))
        #expect(by["www/index.html"]?.crc32 == CRC.of("<html>overlay</html>\n") && by["www/luci-static/rom.css"] != nil)
        #expect(by["mnt/data/hello.txt"]?.crc32 == CRC.of("on the data partition\n"))
        #expect(by["etc/tcpdump.link"]?.target == "/usr/lib/opkg/info/tcpdump.control")
    }

    @Test(.enabled(if: ["ext4", "squashfs", "overlay"].allSatisfy(TestImages.canLoopMount), "needs root, loop mounts and overlayfs"))
    func openwrtF2FSTwinArchiveEqualsKernelNamespace() throws {
        try Self.compareWithKernel("openwrt-f2fs-twin.img", minimum: 100)
    }

    // MARK: Kernel replay

    /// Replays the plan with the kernel (partitions loop-mounted read-only, binds, a read-only
    /// overlayfs of lowerdirs) under a temporary directory, then compares images/manifest.py's
    /// view of it with the archive, every field but hardlink grouping. vfat mounts are left out.
    static func compareWithKernel(_ image: String, minimum: Int) throws {
        let scratch = try ScratchDir()
        let a = try Self.assemble(image, in: scratch)
        let inspection = try Disk(path: a.path).inspect()
        let root = scratch.path + "/ns"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var mounted: [String] = []
        var excluded: [String] = []
        // Loop devices set up with losetup (mount -o loop refuses overlapping ranges of one file,
        // as the squashfs partition and its rootfs_data are), one per range.
        var loops: [String: String] = [:]
        defer {
            for t in mounted.reversed() { _ = try? TestImages.run(["umount", t]) }
            for device in loops.values { _ = try? TestImages.run(["losetup", "-d", device]) }
        }
        for m in a.plan.mounts {
            let target = m.where == "/" ? root : root + m.where
            switch m.kind {
            case .partition:
                let p = try #require(inspection.partitions.first { $0.index == m.partition })
                if m.fstype == "vfat" { excluded.append(String(m.where.dropFirst())); continue }
                let offset = m.offset ?? 0
                let range = "\(p.start + offset)+\(p.size - offset)"
                if loops[range] == nil {
                    let out = try TestImages.run(["losetup", "-f", "--show", "-r", "-o", String(p.start + offset),
                                                  "--sizelimit", String(p.size - offset), a.path])
                    loops[range] = String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                }
                try TestImages.run(["mount", "-t", try #require(m.fstype), "-o", "ro", try #require(loops[range]), target])
            case .bind:
                try TestImages.run(["mount", "--bind", root + (try #require(m.what)), target])
                mounted.append(target)
                try TestImages.run(["mount", "-o", "remount,bind,ro", target])
                continue
            case .overlay:
                // Read-only: the upper directory is the topmost lower layer.
                let lower = ([m.upper].compactMap { $0 } + (m.lower ?? [])).map { root + $0 }.joined(separator: ":")
                try TestImages.run(["mount", "-t", "overlay", "overlay", "-o", "ro,lowerdir=\(lower)", target])
            }
            mounted.append(target)
        }
        func isExcluded(_ path: String) -> Bool { excluded.contains { path == $0 || path.hasPrefix($0 + "/") } }
        let expected = try Manifest.ofDirectory(root).filter { $0.type != "socket" && !isExcluded($0.path) }
        let actual = a.entries.filter { !isExcluded($0.path) }
        #expect(expected.count > minimum)
        let diffs = Manifest.differences(expected: expected, actual: actual, ignoring: [.links])
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }
}

enum CRC {
    static func of(_ text: String) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in text.utf8 {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
