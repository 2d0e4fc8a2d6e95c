import DiskImage

/// What the journal replay of one UBIFS did (`UBIFSReader.journal`).
public struct UBIFSJournalSummary: Sendable, Equatable {
    /// False when the reader was opened with `replayJournal: false` (the committed index only).
    public var replayed: Bool
    /// Bud LEBs the log names after the last commit (each from the offset its REF node gives).
    public var buds: Int
    /// Where each bud's replayed nodes start (LEB, byte), in log order.
    public var budStarts: [BudStart] = []
    /// Nodes of those buds applied over the index: inode, data, directory and xattr entry and
    /// truncation nodes (padding excluded).
    public var nodes: Int
    /// What was not replayed and why, each naming its LEB and byte: a log or bud cut short by a
    /// node that does not check (a torn write at the end of the last bud is what a power cut
    /// leaves: the kernel's recovery drops it too), a node that makes no sense.
    public var warnings: [String]

    public struct BudStart: Sendable, Equatable {
        public var lnum: UInt32
        public var offset: UInt32
        /// The journal head (0 garbage collection, 1 base: inodes and entries, 2 data).
        public var journalHead: UInt32
    }
}

extension UBIFS {
    /// `UBIFS_LOG_LNUM`: the log's first LEB.
    static let logFirstLEB: UInt32 = 3
    /// Most journal nodes replayed (the kernel's journal is a few LEBs; this bounds memory).
    static let maximumReplayNodes = 1 << 20

    /// `struct ubifs_ref_node`: a bud LEB of journal head `jhead`, its nodes from `offset` on.
    struct Bud {
        var lnum: UInt32
        var offset: UInt32
        var jhead: UInt32
    }

    /// One node of a bud as replay.c's `replay_bud` records it: what it does to the index.
    struct ReplayNode {
        enum Operation {
            /// An inode, data, directory or xattr entry node: the key (and, for entries, the
            /// name) now points at `location`.
            case put(Key, name: [UInt8]?, Location)
            /// A directory or xattr entry with inode number 0: the name is gone.
            case remove(Key, name: [UInt8])
            /// An inode with no links (every key of the inode number is gone) or a truncation
            /// (the data blocks past the new size are gone): keys `low...high`, one inode number.
            case removeRange(inum: UInt32, low: UInt32, high: UInt32)
        }
        var sequence: UInt64
        var operation: Operation
    }
}

/// The journal applied in memory over the committed index, as replay.c's `apply_replay_list`
/// applies it to the TNC: the nodes of every bud in sequence-number order, each key's newest
/// node location (or its deletion) kept, and the key ranges removed. Only locations are kept,
/// never node contents.
struct UBIFSReplayOverlay {
    /// One key's state after the journal: a node location, or nil when deleted. Entry keys
    /// (hashed names) have one slot per name, other keys one slot with no name.
    struct Slot {
        var name: [UInt8]?
        var location: UBIFS.Location?
    }

    /// inode number -> key's second word -> slots.
    private var slots: [UInt32: [UInt32: [Slot]]] = [:]
    /// inode number -> second-word ranges removed (hiding the committed index there).
    private var removed: [UInt32: [ClosedRange<UInt32>]] = [:]

    var isEmpty: Bool { slots.isEmpty && removed.isEmpty }

    init(_ nodes: [UBIFS.ReplayNode]) {
        for node in nodes.sorted(by: { $0.sequence < $1.sequence }) { apply(node.operation) }
    }

    private mutating func apply(_ operation: UBIFS.ReplayNode.Operation) {
        switch operation {
        case let .put(key, name, location):
            set(key, name: name, location)
        case let .remove(key, name):
            set(key, name: name, nil)
        case let .removeRange(inum, low, high):
            slots[inum] = slots[inum]?.filter { !(low...high).contains($0.key) }
            removed[inum, default: []].append(low...high)
        }
    }

    private mutating func set(_ key: UBIFS.Key, name: [UInt8]?, _ location: UBIFS.Location?) {
        var list = slots[key.inum]?[key.word] ?? []
        list.removeAll { $0.name == name }
        list.append(Slot(name: name, location: location))
        slots[key.inum, default: [:]][key.word] = list
    }

    /// Whether the journal decides about the committed leaf `key` (named `name()` for an
    /// entry key, read only when the journal holds that key): then the leaf is not shown.
    func hides(_ key: UBIFS.Key, name: () throws -> [UInt8]) throws -> Bool {
        if let list = slots[key.inum]?[key.word] {
            if list.contains(where: { $0.name == nil }) { return true }
            let leafName = try name()
            if list.contains(where: { $0.name == leafName }) { return true }
        }
        return removed[key.inum]?.contains { $0.contains(key.word) } ?? false
    }

    /// The journal's live keys in `low...high` (a key may appear once per name).
    func leaves(from low: UBIFS.Key, to high: UBIFS.Key) -> [(key: UBIFS.Key, location: UBIFS.Location)] {
        var result: [(key: UBIFS.Key, location: UBIFS.Location)] = []
        // every reader call asks for one inode number's keys: no scan of the others
        let inums = low.inum == high.inum ? [low.inum] : slots.keys.filter { $0 >= low.inum && $0 <= high.inum }
        for inum in inums {
            guard let words = slots[inum] else { continue }
            for (word, list) in words {
                let key = UBIFS.Key(inum: inum, word: word)
                guard key >= low, key <= high else { continue }
                result += list.compactMap { slot in slot.location.map { (key, $0) } }
            }
        }
        return result
    }
}

extension UBIFSReader {
    /// The buds of the log after the commit-start node of the current commit, as replay.c's
    /// `replay_log_leb` reads them from the master's `log_lnum` (the log is circular over
    /// `log_lebs` LEBs from LEB 3): a LEB whose first node is older than the commit start, or
    /// that holds no node, ends the log. A log that cannot be read is a warning (the committed
    /// index is read).
    func readLog(_ master: UBIFS.Master, warnings: inout [String]) throws -> [UBIFS.Bud] {
        let logLEBs = superblock.logLEBs
        let first = UBIFS.logFirstLEB
        guard logLEBs > 0, UInt64(first) + UInt64(logLEBs) <= UInt64(superblock.lebCount), master.logLnum >= first,
              master.logLnum - first < logLEBs else {
            warnings.append("the master node's log LEB \(master.logLnum) is outside the log (LEBs \(first)..<\(UInt64(first) + UInt64(logLEBs))): no journal replayed")
            return []
        }
        var buds: [UBIFS.Bud] = []
        var commitStart: UInt64?
        var lnum = master.logLnum
        repeat {
            var offset: UInt32 = 0
            scan: while true {
                let scanned = try scanNode(lnum: lnum, offset: &offset)
                guard case let .node(header, node) = scanned else {
                    if case let .stop(reason) = scanned { warnings.append("log LEB \(lnum) at byte \(offset): \(reason)") }
                    break scan
                }
                let c = ByteCursor(node, context: "ubifs log node")
                if commitStart == nil {
                    guard header.nodeType == UBIFS.NodeType.commitStart.rawValue, try c.u64le(at: 24) == master.commitNumber else {
                        warnings.append("log LEB \(lnum) does not start with the commit-start node of commit \(master.commitNumber): no journal replayed")
                        return []
                    }
                    commitStart = header.sequence
                }
                guard header.sequence >= commitStart ?? 0 else { return buds }   // older log data: the end
                switch UBIFS.NodeType(rawValue: header.nodeType) {
                case .ref?:
                    let bud = UBIFS.Bud(lnum: try c.u32le(at: 24), offset: try c.u32le(at: 28), jhead: try c.u32le(at: 32))
                    if let problem = check(bud, known: buds) {
                        warnings.append("log LEB \(lnum) at byte \(offset): \(problem)")
                    } else if !buds.contains(where: { $0.lnum == bud.lnum }) {
                        buds.append(bud)
                    }
                case .commitStart? where offset == 0:
                    break
                default:
                    warnings.append("log LEB \(lnum) at byte \(offset): unexpected \(header.nodeType)-type node; the log ends there")
                    return buds
                }
                offset += (header.length + 7) & ~7
            }
            if offset == 0 { break }   // an empty log LEB: the end of the log
            lnum = lnum + 1 < first + logLEBs ? lnum + 1 : first
        } while lnum != master.logLnum
        return buds
    }

    /// replay.c's `validate_ref`: the LEB in the main area, the offset min-I/O aligned, the
    /// journal head known; the same LEB again with the same head is the same bud (skipped).
    private func check(_ bud: UBIFS.Bud, known: [UBIFS.Bud]) -> String? {
        let mainFirst = UInt64(UBIFS.logFirstLEB) + UInt64(superblock.logLEBs) + UInt64(superblock.lptLEBs) + UInt64(superblock.orphanLEBs)
        guard UInt64(bud.lnum) >= mainFirst, bud.lnum < superblock.lebCount, UInt64(bud.offset) <= lebSize,
              bud.offset % max(superblock.minIOSize, 1) == 0, UInt64(bud.jhead) < UInt64(superblock.journalHeads) + 2 else {
            return "REF node names bud LEB \(bud.lnum):\(bud.offset) of journal head \(bud.jhead), outside the main area or misaligned; skipped"
        }
        if let other = known.first(where: { $0.lnum == bud.lnum }), other.jhead != bud.jhead || other.offset > bud.offset {
            return "REF node names bud LEB \(bud.lnum) a second time for another journal head or an earlier offset; skipped"
        }
        return nil
    }

    /// What `scanNode` found at an offset.
    enum Scanned {
        /// A node whose magic, length and CRC check.
        case node(UBIFS.CommonHeader, [UInt8])
        /// Erased flash (0xFFFFFFFF) or the end of the LEB: nothing more here.
        case end
        /// Bytes that are not a valid node (a torn write, garbage): the reason.
        case stop(String)
    }

    /// scan.c's `ubifs_scan_a_node` at `offset` of LEB `lnum`: padding nodes and 0xCE padding
    /// bytes are stepped over (`offset` moves past them); a node is returned checked.
    func scanNode(lnum: UInt32, offset: inout UInt32) throws -> Scanned {
        let base = UInt64(lnum) * lebSize
        while UInt64(offset) + 8 <= lebSize {
            guard base + UInt64(offset) + UInt64(UBIFS.commonHeaderSize) <= source.size else {
                return UInt64(offset) + UInt64(UBIFS.commonHeaderSize) > lebSize ? .end : .stop("the image ends inside the LEB")
            }
            let head = try source.bytes(at: base + UInt64(offset), count: UBIFS.commonHeaderSize)
            let header = try UBIFS.CommonHeader(ByteCursor(head, context: "ubifs node header"))
            if header.magic == 0xFFFF_FFFF { return .end }
            guard header.magic == UBIFS.magic else {
                let padding = head.prefix(28).prefix { $0 == 0xCE }.count / 8 * 8   // scan_padding_bytes
                guard padding > 0 else { return .stop("no node here (bad magic 0x\(String(header.magic, radix: 16)))") }
                offset += UInt32(padding)
                continue
            }
            let length = UInt64(header.length)
            guard length >= UInt64(UBIFS.commonHeaderSize), length <= UInt64(UBIFS.maximumNodeLength),
                  UInt64(offset) + length <= lebSize else {
                return .stop("a node of impossible length \(header.length)")
            }
            guard base + UInt64(offset) + length <= source.size else { return .stop("the image ends inside a node") }
            let node = try source.bytes(at: base + UInt64(offset), count: Int(length))
            guard UBIFS.crc(node) == header.crc else { return .stop("a \(header.nodeType)-type node with a bad CRC") }
            if header.nodeType == UBIFS.NodeType.padding.rawValue {
                let pad = UInt64(try ByteCursor(node, context: "ubifs padding node").u32le(at: 24))
                guard (length + pad) % 8 == 0, UInt64(offset) + length + pad <= lebSize else { return .stop("a bad padding node") }
                offset += UInt32(length + pad)
                continue
            }
            return .node(header, node)
        }
        return .end
    }
}

extension UBIFSReader {
    /// The nodes of every bud, from its REF node's offset up to erased flash, as replay.c's
    /// `replay_bud` collects them. A bud that stops at bytes that are not a valid node (a torn
    /// write, garbage) gives what it held up to there, and a warning naming the place.
    func replayNodes(of buds: [UBIFS.Bud], warnings: inout [String]) throws -> [UBIFS.ReplayNode] {
        var nodes: [UBIFS.ReplayNode] = []
        for bud in buds {
            var offset = bud.offset
            var count = 0
            scan: while true {
                let scanned = try scanNode(lnum: bud.lnum, offset: &offset)
                guard case let .node(header, node) = scanned else {
                    if case let .stop(reason) = scanned {
                        warnings.append("bud LEB \(bud.lnum) at byte \(offset): \(reason); \(count) node(s) of this bud replayed, the rest dropped (as the kernel's recovery drops a torn write)")
                    }
                    break scan
                }
                let location = UBIFS.Location(lnum: bud.lnum, offset: offset, length: header.length)
                do {
                    if let operation = try Self.replayOperation(header, node, at: location) {
                        nodes.append(UBIFS.ReplayNode(sequence: header.sequence, operation: operation))
                        count += 1
                    }
                } catch let error as FWError {
                    warnings.append("bud LEB \(bud.lnum) at byte \(offset): \(error.message); \(count) node(s) of this bud replayed, the rest dropped")
                    break scan
                }
                guard nodes.count <= UBIFS.maximumReplayNodes else {
                    throw FWError.corrupt("ubifs journal holds more than \(UBIFS.maximumReplayNodes) nodes")
                }
                offset += (header.length + 7) & ~7
            }
        }
        return nodes
    }

    /// What one bud node does to the index (nil: nothing, an authentication node); throws for a
    /// node that makes no sense there (its key of another type, a bad name, a truncation that
    /// does not shrink).
    static func replayOperation(_ header: UBIFS.CommonHeader, _ node: [UInt8], at location: UBIFS.Location) throws -> UBIFS.ReplayNode.Operation? {
        let c = ByteCursor(node, context: "ubifs journal node")
        func key(_ type: UBIFS.KeyType) throws -> UBIFS.Key {
            let key = try UBIFS.Key(c, at: 24)
            guard key.type == type.rawValue else { throw FWError.corrupt("a \(type) node carries the key \(key)") }
            return key
        }
        switch UBIFS.NodeType(rawValue: header.nodeType) {
        case .inode?:
            let key = try key(.inode)
            return try c.u32le(at: 92) == 0 ? .removeRange(inum: key.inum, low: 0, high: .max) : .put(key, name: nil, location)
        case .data?:
            return .put(try key(.data), name: nil, location)
        case .dent?, .xent?:
            let dent = try UBIFS.Dent(c)
            guard dent.key.type == (header.nodeType == UBIFS.NodeType.dent.rawValue ? UBIFS.KeyType.dent : .xent).rawValue,
                  !dent.name.isEmpty, dent.name.count <= 255 else {
                throw FWError.corrupt("an entry node with the key \(dent.key) and a \(dent.name.count)-byte name")
            }
            return dent.inum == 0 ? .remove(dent.key, name: dent.name) : .put(dent.key, name: dent.name, location)
        case .truncation?:
            // `struct ubifs_trun_node`: inum, old_size, new_size; replay.c's trun_remove_range
            let inum = try c.u32le(at: 24), oldSize = try c.u64le(at: 40), newSize = try c.u64le(at: 48)
            guard newSize < oldSize, oldSize <= UInt64(Int64.max) else {
                throw FWError.corrupt("a truncation node of inode \(inum) from \(oldSize) to \(newSize) bytes")
            }
            let first = (newSize + UBIFS.blockSize - 1) / UBIFS.blockSize
            let last = oldSize / UBIFS.blockSize - (oldSize % UBIFS.blockSize == 0 ? 1 : 0)
            guard first <= last, first <= 0x1FFF_FFFF else { return nil }
            return .removeRange(inum: inum, low: UBIFS.Key(inum: inum, type: .data, value: UInt32(first)).word,
                                high: UBIFS.Key(inum: inum, type: .data, value: UInt32(min(last, 0x1FFF_FFFF))).word)
        case .authentication?:
            return nil
        default:
            throw FWError.corrupt("a \(header.nodeType)-type node has no place in a bud")
        }
    }
}
