import DiskImage
@testable import MountPlan
import Testing

/// btrfs mount options and snapper snapshot paths (the plans themselves are compared with the
/// kernel in Tests/EndToEndTests/BtrfsEndToEndTests.swift).
@Suite struct BtrfsMountTests {
    @Test func subvolumeOptions() throws {
        #expect(try BtrfsMounts.subvolumes(options: "subvol=/@/var,x-initrd.mount") == (nil, "/@/var"))
        #expect(try BtrfsMounts.subvolumes(options: "compress=zstd:1,subvolid=258") == (258, nil))
        #expect(try BtrfsMounts.subvolumes(options: "subvolid=0,subvol=root") == (nil, "root"))
        #expect(try BtrfsMounts.subvolumes(options: "defaults") == (nil, nil))
        #expect(throws: FWError.self) { try BtrfsMounts.subvolumes(options: "subvolid=abc") }
        #expect(BtrfsMounts.selectsSubvolume("ro,subvol=@"))
        #expect(!BtrfsMounts.selectsSubvolume("ro,compress=zstd"))
    }

    @Test func snapperPaths() {
        let s = SnapperSnapshot(subvolumePath: "@/.snapshots/12/snapshot")
        #expect(s?.number == 12 && s?.infoPath == "@/.snapshots/12/info.xml")
        #expect(SnapperSnapshot(subvolumePath: ".snapshots/3/snapshot")?.infoPath == ".snapshots/3/info.xml")
        #expect(SnapperSnapshot(subvolumePath: "@/.snapshots/x/snapshot") == nil)
        #expect(SnapperSnapshot(subvolumePath: "@/home") == nil)
    }
}
