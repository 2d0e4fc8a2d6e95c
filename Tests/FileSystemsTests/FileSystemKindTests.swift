import DiskImage
import FileSystems
import Foundation
import Testing
import TestSupport

/// The one table of filesystem magics (`FileSystemKind`): every bare test filesystem is named as
/// libblkid names it (ext2 and ext3 read as ext4), and only the formats with a reader say so.
@Suite("Filesystem magic table")
struct FileSystemKindTests {
    static let images: [(String, FileSystemKind?)] = [
        ("bare-ext2.img", .ext4), ("bare-ext3.img", .ext4), ("bare-fs.img", .ext4),
        ("bare-vfat.img", .vfat), ("extract-squashfs.img", .squashfs), ("fs-erofs-plain.img", .erofs),
        ("bare-xfs.img", .xfs), ("bare-btrfs.img", .btrfs), ("bare-f2fs.img", .f2fs), ("bare-swap.img", nil),
    ]

    @Test("each bare filesystem is named as libblkid names it", arguments: images)
    func namesAsLibblkid(name: String, expected: FileSystemKind?) throws {
        let path = try TestImages.path(name)
        let source = try FileSource(path: path)
        let head = try source.bytes(at: 0, count: Int(min(source.size, UInt64(FileSystemKind.headSize))))
        let kind = FileSystemKind.detect(head)
        #expect(kind == expected)
        let blkid = String(decoding: try TestImages.run(["blkid", "-p", "-o", "value", "-s", "TYPE", path]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let named = blkid.hasPrefix("ext") ? "ext4" : blkid
        if let kind { #expect(kind.rawValue == named) }
        #expect(kind?.isRead == (expected.map { [.ext4, .squashfs, .erofs, .vfat, .btrfs, .f2fs].contains($0) }))
        // The superblock magics alone (a decoded head): every kind but FAT, which has none.
        #expect(FileSystemKind.superblockMagic(in: head) == (expected == .vfat ? nil : expected))
    }

    @Test("short heads match nothing; readable magics come before the FAT check")
    func order() {
        #expect(FileSystemKind.detect([UInt8](repeating: 0, count: 511)) == nil)
        var head = [UInt8](repeating: 0, count: FileSystemKind.headSize)
        // A FAT boot sector (mkfs.fat's first bytes) that also holds the btrfs magic at 64 KiB:
        // btrfs is read, but a magic that far in loses to the boot sector (mkfs.btrfs zeroes the
        // start of its device, so the boot sector was written after it).
        head[0] = 0xEB; head[1] = 0x3C; head[2] = 0x90
        head[11] = 0x00; head[12] = 0x02; head[13] = 4; head[14] = 4; head[16] = 2; head[19] = 0x00; head[20] = 0x50
        head[510] = 0x55; head[511] = 0xAA
        #expect(FileSystemKind.detect(head) == .vfat)
        head.replaceSubrange(0x10040..<0x10048, with: Array("_BHRfS_M".utf8))
        #expect(FileSystemKind.detect(head) == .vfat)
        #expect(FileSystemKind.superblockMagic(in: head) == .btrfs)
        head.replaceSubrange(1080..<1082, with: [0x53, 0xEF])
        #expect(FileSystemKind.detect(head) == .ext4)
        #expect(FileSystemKind.squashfs.hasMagic(in: Array("hsqs".utf8)))
    }
}
