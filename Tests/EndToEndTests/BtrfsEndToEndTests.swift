import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// btrfs roots through plan and assemble: microos.img (images/disks/microos.sh), a MicroOS-style
/// disk whose default subvolume is snapper snapshot 2 and whose fstab mounts /var, /home, /root
/// and /.snapshots as subvolumes.
@Suite("btrfs roots: plan and assemble", .serialized,
       .enabled(if: (try? TestImages.path("microos.img")) != nil && (try? TestImages.path("fedora-btrfs.img")) != nil && CLI.path != nil,
                "microos.img / fedora-btrfs.img not built (they need root, loop devices and btrfs) or the CLI not built"))
struct BtrfsEndToEndTests {
    @Test("microos: the default subvolume (snapshot 2) is the root, named with its info.xml; fstab's subvol= mounts are planned")
    func microosPlan() throws {
        let plan = try Disk(path: try TestImages.path("microos.img")).plan()
        #expect(plan.profile == "microos")
        #expect(plan.root.partition == 2)
        #expect(plan.root.reason.contains("btrfs default subvolume"))
        #expect(plan.root.reason.contains("(@/.snapshots/2/snapshot), snapper snapshot 2"))
        #expect(plan.root.reason.contains("/@/.snapshots/2/info.xml: type single"))
        #expect(plan.root.reason.contains("read-only"))
        let btrfs = plan.mounts.filter { $0.fstype == "btrfs" }
        #expect(btrfs.map(\.where) == ["/", "/var", "/home", "/root", "/.snapshots"])
        #expect(btrfs.map(\.options) == ["", "subvol=/@/var,x-initrd.mount", "subvol=/@/home", "subvol=/@/root", "subvol=/@/.snapshots"])
        #expect(plan.skipped.allSatisfy { !$0.reason.contains("subvol") }, "\(plan.skipped)")
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    @Test("microos: the assembled archive equals the kernel's mounts (default subvolume, then fstab's subvolumes) in every field")
    func microosAssemble() throws {
        let path = try TestImages.path("microos.img")
        let scratch = try ScratchDir()
        let out = scratch.path + "/microos.tar"
        let r = try CLI.run(["assemble", "--quiet", path, "-o", out, "--compression", "none"])
        try #require(r.status == 0, "\(r.stderr)")
        let archive = try TarView.manifest(out)
        #expect(archive.contains { $0.path == "usr/bin/added-in-2" })
        #expect(archive.contains { $0.path == "var/lib/misc/state" })
        #expect(archive.contains { $0.path == "root/.bashrc" && $0.perm == 0o600 })
        #expect(archive.contains { $0.path == ".snapshots/1/snapshot/usr/lib/os-release" })
        #expect(!archive.contains { $0.path == "marker" })
        guard TestImages.canLoopMount("btrfs") else { return }
        let plan = try Disk(path: path).plan()
        let kernel = try KernelNamespace(image: path, plan: plan, inspection: try Disk(path: path).inspect())
        defer { kernel.unmount() }
        let expected = try kernel.manifest()
        let actual = archive.filter { !kernel.isExcluded($0.path) }
        #expect(expected.count > 40)
        #expect(expected.contains { $0.xattrs["security.capability"] != nil })
        // Links left out: the snapshots hold the same files in other subvolumes, which the
        // kernel shows as separate inodes, as the archive does (no hardlink across subvolumes).
        let diffs = Manifest.differences(expected: expected, actual: actual, ignoring: [.links])
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("fedora: rootflags=subvol=root of the /boot partition's boot entry picks the root; fstab mounts subvol=home")
    func fedoraPlan() throws {
        let plan = try Disk(path: try TestImages.path("fedora-btrfs.img")).plan()
        #expect(plan.root.partition == 3)
        #expect(plan.root.reason.contains("btrfs subvolume 256 (root) from partition 2 /loader/entries/0123-6.8.5-301.fc40.x86_64.conf rootflags=subvol=root"))
        let btrfs = plan.mounts.filter { $0.fstype == "btrfs" }
        #expect(btrfs.map(\.where) == ["/", "/home"])
        #expect(btrfs.map(\.options) == ["subvol=root", "subvol=home,compress=zstd:1"])
        #expect(plan.warnings.isEmpty, "\(plan.warnings)")
    }

    @Test("fedora: the assembled archive equals the kernel's mounts in every field")
    func fedoraAssemble() throws {
        let path = try TestImages.path("fedora-btrfs.img")
        let scratch = try ScratchDir()
        let out = scratch.path + "/fedora.tar"
        let r = try CLI.run(["assemble", "--quiet", path, "-o", out, "--compression", "none"])
        try #require(r.status == 0, "\(r.stderr)")
        let archive = try TarView.manifest(out)
        #expect(archive.contains { $0.path == "home/fedora/notes.txt" && $0.uid == 1000 })
        #expect(archive.contains { $0.path == "boot/loader/entries/0123-6.8.5-301.fc40.x86_64.conf" })
        guard TestImages.canLoopMount("btrfs") else { return }
        let plan = try Disk(path: path).plan()
        let kernel = try KernelNamespace(image: path, plan: plan, inspection: try Disk(path: path).inspect())
        defer { kernel.unmount() }
        let expected = try kernel.manifest()
        #expect(expected.count > 20)
        let diffs = Manifest.differences(expected: expected, actual: archive.filter { !kernel.isExcluded($0.path) })
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }

    @Test("inspect --json lists a btrfs filesystem's subvolumes (id, path, read_only, default) and features")
    func inspectSubvolumes() throws {
        let r = try CLI.run(["inspect", "--json", try TestImages.path("microos.img")])
        try #require(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let partitions = try #require(json["partitions"] as? [[String: Any]])
        let fs = try #require(partitions.last?["filesystem"] as? [String: Any])
        #expect(fs["type"] as? String == "btrfs")
        let btrfs = try #require(fs["btrfs"] as? [String: Any])
        #expect(btrfs["checksum"] as? String == "crc32c")
        #expect(btrfs["checksums_verified"] as? Bool == true)
        #expect((btrfs["features"] as? [String])?.contains("no_holes") == true)
        let subvolumes = try #require(btrfs["subvolumes"] as? [[String: Any]])
        let rows: [String] = subvolumes.map { (s: [String: Any]) -> String in
            let id = s["id"] as? Int ?? -1, path = s["path"] as? String ?? "?"
            let readOnly = s["read_only"] as? Bool ?? false, isDefault = s["default"] as? Bool ?? false
            return "\(id) \(path) \(readOnly) \(isDefault)"
        }
        #expect(rows == ["5  false false", "256 @ false false", "257 @/.snapshots false false", "258 @/.snapshots/1/snapshot true false",
                         "259 @/var false false", "260 @/home false false", "261 @/root false false",
                         "262 @/.snapshots/2/snapshot true true"], "\(rows)")
        // The other filesystems carry no "btrfs" key.
        let efi = try #require(partitions.first?["filesystem"] as? [String: Any])
        #expect(efi["btrfs"] == nil)
    }
}
