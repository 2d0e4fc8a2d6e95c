@testable import FileSystemExt4
import Testing

/// The fast-commit scan's rules on areas written record by record (the kernel-made areas are in
/// Ext4JournalTests and Ext4PowerLossTests): which records count, where the scan stops.
@Suite("Ext4 fast-commit scan: the kernel's rules")
struct FastCommitScanTests {
    static let blockSize = 1024

    /// An area of blocks built from records (tag, value); each record stays in its block.
    struct Area {
        var blocks: [[UInt8]] = [[]]
        var crc: UInt32 = 0

        mutating func add(_ tag: UInt16, _ value: [UInt8], tidForTail tid: UInt32? = nil, goodCRC: Bool = true) {
            var record = [UInt8(tag & 0xFF), UInt8(tag >> 8), UInt8(value.count & 0xFF), UInt8(value.count >> 8)] + value
            if let tid {
                record = [UInt8(tag & 0xFF), UInt8(tag >> 8), 8, 0] + le(tid)
                crc = JBD2.crc32c(crc, record)
                record += le(goodCRC ? crc : ~crc)
                crc = 0
            } else {
                crc = JBD2.crc32c(crc, record)
            }
            if blocks[blocks.count - 1].count + record.count > FastCommitScanTests.blockSize { blocks.append([]) }
            blocks[blocks.count - 1] += record
        }

        func le(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)] }

        func scan(expectedTid: UInt32) -> ([FastCommitTag], [String]) {
            let padded = blocks.map { $0 + [UInt8](repeating: 0, count: FastCommitScanTests.blockSize - $0.count) }
            var warnings: [String] = []
            let tags = FastCommitScan.scan(first: 0, end: UInt32(padded.count), expectedTid: expectedTid,
                                           blockSize: FastCommitScanTests.blockSize, maximumInodeSize: 256,
                                           read: { padded[Int($0)] }, warnings: &warnings)
            return (tags, warnings)
        }
    }

    static func head(_ tid: UInt32) -> [UInt8] { [0, 0, 0, 0] + Area().le(tid) }
    static let inode: [UInt8] = [12, 0, 0, 0] + [UInt8](repeating: 0, count: 128)
    static let delRange: [UInt8] = [12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]

    @Test("records up to the last valid tail count; what follows it (a torn fast commit) does not, silently")
    func validPrefix() {
        var a = Area()
        a.add(9, Self.head(7)); a.add(6, Self.inode); a.add(8, [], tidForTail: 7)
        a.add(2, Self.delRange); a.add(8, [], tidForTail: 7, goodCRC: false)
        let (tags, warnings) = a.scan(expectedTid: 7)
        #expect(tags.map(\.kind) == [.head, .inode, .tail])
        #expect(warnings.isEmpty)
    }

    @Test("two fast commits of the same transaction both count")
    func twoCommits() {
        var a = Area()
        a.add(9, Self.head(7)); a.add(6, Self.inode); a.add(8, [], tidForTail: 7)
        a.add(2, Self.delRange); a.add(8, [], tidForTail: 7)
        #expect(a.scan(expectedTid: 7).0.map(\.kind) == [.head, .inode, .tail, .deleteRange, .tail])
    }

    @Test("a head of another transaction: a stale area, nothing applied, no warning")
    func staleHead() {
        var a = Area()
        a.add(9, Self.head(6)); a.add(6, Self.inode); a.add(8, [], tidForTail: 6)
        let (tags, warnings) = a.scan(expectedTid: 7)
        #expect(tags.isEmpty && warnings.isEmpty)
    }

    @Test("no head at the start: not in use")
    func noHead() {
        var a = Area()
        a.add(6, Self.inode); a.add(8, [], tidForTail: 7)
        #expect(a.scan(expectedTid: 7).0.isEmpty)
    }

    @Test("damage before any valid tail (bad CRC, bad length, unknown tag, unknown head features): nothing, a warning",
          arguments: [0, 1, 2, 3])
    func damagedBeforeTail(kind: Int) {
        var a = Area()
        switch kind {
        case 0: a.add(9, Self.head(7)); a.add(6, Self.inode); a.add(8, [], tidForTail: 7, goodCRC: false)
        case 1: a.add(9, Self.head(7)); a.add(2, Array(Self.delRange.prefix(8))); a.add(8, [], tidForTail: 7)
        case 2: a.add(9, Self.head(7)); a.add(42, [1, 2, 3]); a.add(8, [], tidForTail: 7)
        default: a.add(9, [1, 0, 0, 0] + a.le(7)); a.add(8, [], tidForTail: 7)
        }
        let (tags, warnings) = a.scan(expectedTid: 7)
        #expect(tags.isEmpty)
        #expect(warnings.count == 1 && warnings[0].contains("refuse to mount"), "\(warnings)")
    }

    @Test("a record whose length runs past its block: the scan stops there")
    func lengthPastBlock() {
        var a = Area()
        a.add(9, Self.head(7)); a.add(8, [], tidForTail: 7)
        a.blocks[0] += [7, 0, 0xFF, 0xFF]   // a pad claiming 65535 bytes
        let (tags, warnings) = a.scan(expectedTid: 7)
        #expect(tags.map(\.kind) == [.head, .tail] && warnings.isEmpty)
    }
}
