import DiskImage
@testable import FileSystemExt4
import Foundation
import Testing
import TestSupport

enum TestSupportPaths {
    static func corpus(_ name: String) -> String {
        TestImages.repositoryRoot.appendingPathComponent("Tests/Corpus/\(name)").path
    }
}

/// Journals written byte by byte to the JBD2 format (include/linux/jbd2.h), for the parts of
/// recovery a kernel-made snapshot does not reliably produce: checksum v1, async commit, escaped
/// blocks, revokes across transactions, tags without SAME_UUID, damaged blocks.
struct JournalBuilder {
    var blockSize = 1024
    var blocks: Int = 64
    var incompat: UInt32 = JBD2.incompatRevoke
    var compat: UInt32 = 0
    var uuid: [UInt8] = (0..<16).map { UInt8($0 &* 7 &+ 1) }
    var firstSequence: UInt32 = 10
    var start: UInt32 = 1
    var log: [[UInt8]] = []   // log blocks in order, from `start`, wrapping to block 1
    var commitTime: UInt64 = 1000
    var crcSum: UInt32 = ~0

    var seed: UInt32 { JBD2.crc32c(~0, uuid) }
    var csum: Bool { incompat & (JBD2.incompatCsumV2 | JBD2.incompatCsumV3) != 0 }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    static func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(v >> 32)) + be32(UInt32(v & 0xFFFF_FFFF)) }
    func header(_ type: UInt32, _ seq: UInt32) -> [UInt8] { Self.be32(JBD2.magic) + Self.be32(type) + Self.be32(seq) }
    func put(_ b: inout [UInt8], _ bytes: [UInt8], at o: Int) { b.replaceSubrange(o..<(o + bytes.count), with: bytes) }
    func tail(_ b: inout [UInt8]) {
        guard csum else { return }
        put(&b, [0, 0, 0, 0], at: blockSize - 4)
        put(&b, Self.be32(JBD2.crc32c(seed, b)), at: blockSize - 4)
    }

    /// A transaction: its data blocks (target, bytes), its revokes, committed or not.
    mutating func transaction(_ seq: UInt32, writes: [(UInt64, [UInt8])], revokes: [UInt64] = [], commit: Bool = true,
                              sameUUID: Bool = true) {
        let is64 = incompat & JBD2.incompat64bit != 0
        let v3 = incompat & JBD2.incompatCsumV3 != 0
        if !revokes.isEmpty {
            var r = header(5, seq) + [UInt8](repeating: 0, count: blockSize - 12)
            var o = 16
            for t in revokes { put(&r, is64 ? Self.be64(t) : Self.be32(UInt32(t)), at: o); o += is64 ? 8 : 4 }
            put(&r, Self.be32(UInt32(o)), at: 12)
            tail(&r)
            log.append(r)
        }
        if !writes.isEmpty {
            var d = header(1, seq) + [UInt8](repeating: 0, count: blockSize - 12)
            var o = 12
            var datas: [[UInt8]] = []
            for (i, (target, bytes)) in writes.enumerated() {
                var data = bytes
                var flags: UInt32 = sameUUID && i > 0 ? JBD2.flagSameUUID : 0
                if data.prefix(4) == Self.be32(JBD2.magic)[...] { flags |= JBD2.flagEscape; put(&data, [0, 0, 0, 0], at: 0) }
                if i == writes.count - 1 { flags |= JBD2.flagLastTag }
                // Checksummed as stored in the journal (escaped), as jbd2 commits it.
                let sum = JBD2.crc32c(JBD2.crc32c(seed, Self.be32(seq)), data)
                if v3 {
                    put(&d, Self.be32(UInt32(target & 0xFFFF_FFFF)) + Self.be32(flags) + Self.be32(UInt32(target >> 32)) + Self.be32(sum), at: o)
                    o += 16
                } else {
                    var tag = Self.be32(UInt32(target & 0xFFFF_FFFF)) + [UInt8((sum >> 8) & 0xFF), UInt8(sum & 0xFF)]
                        + [UInt8(flags >> 8), UInt8(flags & 0xFF)]
                    if is64 { tag += Self.be32(UInt32(target >> 32)) }
                    if incompat & JBD2.incompatCsumV2 != 0 { tag += [0, 0] }
                    put(&d, tag, at: o)
                    o += tag.count
                }
                if flags & JBD2.flagSameUUID == 0 { put(&d, uuid, at: o); o += 16 }
                datas.append(data)
            }
            tail(&d)
            if compat & JBD2.compatChecksum != 0 {
                crcSum = JBD2.crc32be(crcSum, d)
                for data in datas { crcSum = JBD2.crc32be(crcSum, data) }
            }
            log.append(d)
            log += datas
        }
        if commit {
            var c = header(2, seq) + [UInt8](repeating: 0, count: blockSize - 12)
            if compat & JBD2.compatChecksum != 0 {
                c[12] = 1; c[13] = 4
                put(&c, Self.be32(crcSum), at: 16)
                crcSum = ~0
            }
            put(&c, Self.be64(commitTime), at: 48)
            commitTime += 1
            if csum { put(&c, Self.be32(JBD2.crc32c(seed, c)), at: 16) }
            log.append(c)
        }
    }

    /// The whole journal: superblock, then the log laid from `start` (wrapping to block 1).
    func bytes() -> [UInt8] {
        var j = [UInt8](repeating: 0, count: blockSize * blocks)
        var sb = header(4, 0) + [UInt8](repeating: 0, count: blockSize - 12)
        put(&sb, Self.be32(UInt32(blockSize)) + Self.be32(UInt32(blocks)) + Self.be32(1) + Self.be32(firstSequence) + Self.be32(start), at: 12)
        put(&sb, Self.be32(compat) + Self.be32(incompat) + Self.be32(0), at: 36)
        put(&sb, uuid, at: 48)
        if csum {
            sb[80] = 4   // JBD2_CRC32C_CHKSUM
            put(&sb, Self.be32(JBD2.crc32c(~0, Array(sb.prefix(1024)))), at: 0xFC)
        }
        put(&j, sb, at: 0)
        var position = Int(start)
        for b in log {
            put(&j, b, at: position * blockSize)
            position += 1
            if position >= blocks { position = 1 }
        }
        return j
    }

    func block(_ fill: UInt8) -> [UInt8] { [UInt8](repeating: fill, count: blockSize) }
}

@Suite("JBD2 parser: journals written to the format")
struct Ext4JournalParserTests {
    static let variants: [UInt32] = [
        JBD2.incompatRevoke,                                                  // 32-bit tags, no checksums
        JBD2.incompatRevoke | JBD2.incompat64bit,                             // 64-bit tags
        JBD2.incompatRevoke | JBD2.incompatCsumV2,                            // csum v2 (16-bit tag checksums)
        JBD2.incompatRevoke | JBD2.incompat64bit | JBD2.incompatCsumV3,       // csum v3 (tag3)
        JBD2.incompatRevoke | JBD2.incompatCsumV3,                            // csum v3, 32-bit
    ]

    @Test("newest version wins, revokes cancel older writes only, escaped blocks restored", arguments: variants)
    func replaySemantics(incompat: UInt32) throws {
        var j = JournalBuilder()
        j.incompat = incompat
        var escaped = j.block(0xEE)
        escaped.replaceSubrange(0..<4, with: JournalBuilder.be32(JBD2.magic))
        j.transaction(10, writes: [(100, j.block(1)), (200, j.block(2)), (300, escaped)], sameUUID: false)
        j.transaction(11, writes: [(100, j.block(3))], revokes: [200])
        j.transaction(12, writes: [(200, j.block(4))], revokes: [100])
        j.transaction(13, writes: [(400, j.block(5))], commit: false)   // never committed
        let (r, blocks) = JournalParser.replay(journal: j.bytes())
        #expect(r.warnings.isEmpty, "\(r.warnings)")
        #expect(r.transactions == 3)
        #expect(blocks[200] == j.block(4))      // revoked in 11, written again in 12
        #expect(blocks[100] == nil)             // revoked in 12: both writes cancelled
        #expect(blocks[300] == escaped)
        #expect(blocks[400] == nil)
        #expect(r.revoked == 3 && r.blocks == 2)
    }

    @Test("a log that wraps around the end of the journal", arguments: variants)
    func wrap(incompat: UInt32) throws {
        var j = JournalBuilder()
        j.incompat = incompat
        j.blocks = 16
        j.start = 12
        j.transaction(10, writes: [(7, j.block(1)), (8, j.block(2))])
        j.transaction(11, writes: [(7, j.block(3)), (9, j.block(4))])
        let (r, blocks) = JournalParser.replay(journal: j.bytes())
        #expect(r.warnings.isEmpty, "\(r.warnings)")
        #expect(r.transactions == 2 && blocks[7] == j.block(3) && blocks[8] == j.block(2) && blocks[9] == j.block(4))
    }

    @Test("checksum v1: a transaction whose commit CRC32 fails ends replay (sync and async commit)",
          arguments: [false, true])
    func checksumV1(async: Bool) throws {
        var j = JournalBuilder()
        j.compat = JBD2.compatChecksum
        if async { j.incompat |= JBD2.incompatAsyncCommit }
        j.transaction(10, writes: [(5, j.block(1))])
        j.transaction(11, writes: [(6, j.block(2))])
        j.transaction(12, writes: [(7, j.block(3))])
        var bytes = j.bytes()
        let good = JournalParser.replay(journal: bytes)
        #expect(good.replay.warnings.isEmpty && good.replay.transactions == 3, "\(good.replay.warnings)")
        // Damage transaction 11's data block (log block 4): its commit checksum no longer matches.
        bytes[4 * 1024 + 100] ^= 1
        let (r, blocks) = JournalParser.replay(journal: bytes)
        #expect(r.transactions == 1 && blocks[5] != nil && blocks[6] == nil && blocks[7] == nil)
        #expect(r.warnings.contains { $0.contains("transaction 11") })
    }

    @Test("checksum v3: a damaged data block is skipped, a damaged commit ends replay, a damaged superblock stops it")
    func checksumV3() throws {
        var j = JournalBuilder()
        j.incompat = JBD2.incompatRevoke | JBD2.incompat64bit | JBD2.incompatCsumV3
        j.transaction(10, writes: [(5, j.block(1)), (6, j.block(2))])
        j.transaction(11, writes: [(7, j.block(3))])
        let bytes = j.bytes()
        // log: 1 descriptor, 2-3 data, 4 commit, 5 descriptor, 6 data, 7 commit
        var data = bytes
        data[2 * 1024 + 9] ^= 1
        let d = JournalParser.replay(journal: data)
        #expect(d.replay.transactions == 2 && d.blocks[5] == nil && d.blocks[6] != nil && d.blocks[7] != nil)
        #expect(d.replay.warnings.count == 1)
        var commit = bytes
        commit[7 * 1024 + 40] ^= 1
        let c = JournalParser.replay(journal: commit)
        #expect(c.replay.transactions == 1 && c.blocks[7] == nil && !c.replay.warnings.isEmpty)
        var descriptor = bytes
        descriptor[5 * 1024 + 30] ^= 1
        let t = JournalParser.replay(journal: descriptor)
        #expect(t.replay.transactions == 1 && t.blocks[7] == nil && !t.replay.warnings.isEmpty)
        var sb = bytes
        sb[50] ^= 1
        let s = JournalParser.replay(journal: sb)
        #expect(!s.replay.replayed && s.replay.warnings.contains { $0.contains("superblock") })
    }

    @Test("untrusted journals end replay with a warning: outside target, revoke count, truncated journal, bad bounds")
    func untrusted() throws {
        var j = JournalBuilder()
        j.transaction(10, writes: [(5, j.block(1))])
        j.transaction(11, writes: [(5000, j.block(2))])
        let outside = JournalParser.replay(journal: j.bytes(), filesystemBlocks: 1000)
        #expect(outside.replay.transactions == 1 && outside.replay.warnings.contains { $0.contains("outside") })

        var r = JournalBuilder()
        r.transaction(10, writes: [(5, r.block(1))])
        r.transaction(11, writes: [(6, r.block(2))], revokes: [5])
        var bytes = r.bytes()
        // log: 1 descriptor, 2 data, 3 commit (10); 4 revoke, 5 descriptor, 6 data, 7 commit (11)
        bytes.replaceSubrange((4 * 1024 + 12)..<(4 * 1024 + 16), with: JournalBuilder.be32(0xFFFF_FFF0))
        let revoke = JournalParser.replay(journal: bytes)
        #expect(revoke.replay.transactions == 1 && revoke.blocks[5] != nil && revoke.blocks[6] == nil)
        #expect(revoke.replay.warnings.contains { $0.contains("revoke") })

        // A bad revoke block after a good one of the same transaction: the transaction's revokes
        // go with it, so transaction 10's write survives.
        var two = JournalBuilder()
        two.transaction(10, writes: [(5, two.block(1))])
        two.transaction(11, writes: [(6, two.block(2))], revokes: [5])
        var bad = two.header(5, 11) + [UInt8](repeating: 0, count: 1024 - 12)
        bad.replaceSubrange(12..<16, with: JournalBuilder.be32(0xFFFF_0000))
        two.log.insert(bad, at: 4)   // after transaction 11's good revoke block
        let both = JournalParser.replay(journal: two.bytes())
        #expect(both.replay.transactions == 1 && both.blocks[5] == two.block(1) && both.replay.revoked == 0, "\(both.replay)")

        let cut = JournalParser.replay(journal: Array(j.bytes().prefix(3 * 1024)))
        #expect(cut.replay.warnings.contains { $0.contains("past") || $0.contains("fit") })

        var bounds = j.bytes()
        bounds.replaceSubrange(28..<32, with: JournalBuilder.be32(1_000_000))   // s_start
        #expect(JournalParser.replay(journal: bounds).replay.warnings.contains { $0.contains("bounds") })
        #expect(JournalParser.replay(journal: []).replay.warnings.count == 1)
    }

    @Test("the committed fuzz regression journal replays as written (wrap, escape, revoke, UUID after a tag)")
    func corpusJournal() throws {
        let path = TestSupportPaths.corpus("jbd2/two-transactions-wrap")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let (r, blocks) = JournalParser.replay(journal: bytes)
        #expect(r.warnings.isEmpty && r.transactions == 2 && r.revoked == 1, "\(r)")
        #expect(blocks[100] == nil)
        #expect(blocks[200].map { Array($0.prefix(5)) } == JournalBuilder.be32(JBD2.magic) + [0x42])
        #expect(blocks[300] == [UInt8](repeating: 0x43, count: 1024))
    }

    @Test("the overlay keeps the latest version of each block and spills past its memory limit")
    func overlaySpill() throws {
        let overlay = BlockOverlay(blockSize: 1024, memoryLimit: 4 * 1024)
        for n in 0..<20 { try overlay.set(UInt64(n), [UInt8](repeating: UInt8(n), count: 1024)) }
        for n in [2, 15] { try overlay.set(UInt64(n), [UInt8](repeating: 0xAA, count: 1024)) }
        #expect(overlay.spilled && overlay.count == 20)
        let base = MemorySource([UInt8](repeating: 0x55, count: 64 * 1024))
        let source = OverlaySource(base: base, overlay: overlay)
        let all = try source.bytes(at: 512, count: 30 * 1024)   // unaligned, across memory, file and base
        for offset in stride(from: 0, to: all.count, by: 256) {
            let block = (512 + offset) / 1024
            let expected: UInt8 = block == 2 || block == 15 ? 0xAA : block < 20 ? UInt8(block) : 0x55
            #expect(all[offset] == expected, "byte \(512 + offset)")
        }
    }
}
