import DiskImage

extension Btrfs {
    /// Block group profile bits of a chunk's `type` (`BTRFS_BLOCK_GROUP_*`).
    public struct Profile: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let data = Profile(rawValue: 0x1)
        public static let system = Profile(rawValue: 0x2)
        public static let metadata = Profile(rawValue: 0x4)
        public static let raid0 = Profile(rawValue: 0x8)
        public static let raid1 = Profile(rawValue: 0x10)
        public static let dup = Profile(rawValue: 0x20)
        public static let raid10 = Profile(rawValue: 0x40)
        public static let raid5 = Profile(rawValue: 0x80)
        public static let raid6 = Profile(rawValue: 0x100)
        public static let raid1c3 = Profile(rawValue: 0x200)
        public static let raid1c4 = Profile(rawValue: 0x400)

        var name: String {
            if contains(.raid0) { return "RAID0" }
            if contains(.raid1) { return "RAID1" }
            if contains(.dup) { return "DUP" }
            if contains(.raid10) { return "RAID10" }
            if contains(.raid5) { return "RAID5" }
            if contains(.raid6) { return "RAID6" }
            if contains(.raid1c3) { return "RAID1C3" }
            if contains(.raid1c4) { return "RAID1C4" }
            return "single"
        }
    }

    /// One stripe of a chunk (`struct btrfs_stripe`, 32 bytes): 0 `devid`, 8 `offset`.
    struct Stripe: Sendable {
        var deviceID: UInt64
        var offset: UInt64
    }

    /// A chunk (`struct btrfs_chunk`, 48 bytes plus its stripes): `logical` is the key's offset.
    struct Chunk: Sendable {
        var logical: UInt64
        /// 0 `length`, 16 `stripe_len`, 24 `type`, 44 `num_stripes`, 46 `sub_stripes`.
        var length: UInt64
        var stripeLength: UInt64
        var profile: Profile
        var subStripes: UInt16
        var stripes: [Stripe]

        static let fixedSize = 48

        /// Decodes the chunk at `offset` in `c`; returns it and its size in bytes.
        init(logical: UInt64, _ c: ByteCursor, at offset: Int) throws {
            self.logical = logical
            length = try c.u64le(at: offset)
            stripeLength = try c.u64le(at: offset + 16)
            profile = Profile(rawValue: try c.u64le(at: offset + 24))
            let count = Int(try c.u16le(at: offset + 44))
            subStripes = try c.u16le(at: offset + 46)
            guard count > 0 else { throw FWError.corrupt("btrfs chunk at logical \(logical) has no stripes") }
            guard length > 0, logical.addingReportingOverflow(length).overflow == false else {
                throw FWError.corrupt("btrfs chunk at logical \(logical) has a bad length \(length)")
            }
            guard stripeLength > 0, stripeLength & (stripeLength - 1) == 0, stripeLength <= 1 << 30 else {
                throw FWError.corrupt("btrfs chunk at logical \(logical) has a bad stripe length \(stripeLength)")
            }
            stripes = try (0..<count).map { i in
                Stripe(deviceID: try c.u64le(at: offset + 48 + 32 * i), offset: try c.u64le(at: offset + 56 + 32 * i))
            }
        }

        var byteCount: Int { Self.fixedSize + 32 * stripes.count }
    }

    /// Where one device holds some bytes: its id and the byte offset on it.
    struct Placement: Sendable, Equatable {
        var deviceID: UInt64
        var offset: UInt64
    }

    /// Where a logical address lives: each full copy of it, the bytes contiguous from there (up to
    /// the end of its stripe), and for RAID5/RAID6 the whole row of its stripes (to rebuild a
    /// missing data stripe from the others and P).
    struct Location {
        var chunk: Chunk
        /// The copies in the kernel's mirror order (one for single, RAID0, RAID5/6; two for DUP,
        /// RAID1, RAID10; three or four for RAID1C3, RAID1C4).
        var copies: [Placement]
        var contiguous: UInt64
        /// RAID5/RAID6: the row's stripes at the same offset, data stripes first, then P (then Q).
        var row: [Placement]?
        /// RAID5/RAID6: which of `row`'s data stripes holds the address.
        var dataIndex: Int = 0
    }

    /// Logical addresses to device offsets, from the superblock's sys_chunk_array and the chunk
    /// tree.
    struct ChunkMap {
        /// Sorted by `logical`, not overlapping.
        private(set) var chunks: [Chunk] = []

        init() {}

        /// Adds a chunk (a copy of one already known, as the chunk tree repeats the system chunks,
        /// is ignored); an overlap with another chunk is corrupt.
        mutating func insert(_ chunk: Chunk) throws {
            var low = 0
            var high = chunks.count
            while low < high {
                let mid = (low + high) / 2
                if chunks[mid].logical < chunk.logical { low = mid + 1 } else { high = mid }
            }
            if low < chunks.count, chunks[low].logical == chunk.logical, chunks[low].length == chunk.length { return }
            let end = chunk.logical + chunk.length
            if low > 0, chunks[low - 1].logical + chunks[low - 1].length > chunk.logical {
                throw FWError.corrupt("btrfs chunk at logical \(chunk.logical) overlaps the chunk at \(chunks[low - 1].logical)")
            }
            if low < chunks.count, chunks[low].logical < end {
                throw FWError.corrupt("btrfs chunk at logical \(chunk.logical) overlaps the chunk at \(chunks[low].logical)")
            }
            chunks.insert(chunk, at: low)
        }

        /// The chunk holding `logical`.
        func chunk(containing logical: UInt64) -> Chunk? {
            var low = 0
            var high = chunks.count
            while low < high {
                let mid = (low + high) / 2
                if chunks[mid].logical <= logical { low = mid + 1 } else { high = mid }
            }
            guard low > 0 else { return nil }
            let c = chunks[low - 1]
            return logical - c.logical < c.length ? c : nil
        }

        /// Where `logical` lives, on every device of the filesystem (`btrfs_map_block` for a
        /// read: DUP and RAID1* copies are the chunk's stripes in order, RAID10 the sub-stripes of
        /// one stripe group, RAID0 one stripe, RAID5/6 the data stripe rotating with the parity).
        func locate(_ logical: UInt64) throws -> Location {
            guard let chunk = chunk(containing: logical) else {
                throw FWError.corrupt("btrfs logical address \(logical) is in no chunk")
            }
            let within = logical - chunk.logical
            let p = chunk.profile
            let n = UInt64(chunk.stripes.count)
            let stripeNumber = within / chunk.stripeLength
            let inStripe = within % chunk.stripeLength
            var location = Location(chunk: chunk, copies: [], contiguous: chunk.stripeLength - inStripe)
            var slots: [Int]
            var stripeOffset: UInt64
            if p.contains(.raid5) || p.contains(.raid6) {
                // The data stripe stripe_nr % data_stripes of row stripe_nr / data_stripes sits on
                // device slot (row + index) % num_stripes; P and Q follow the data stripes.
                let parity: UInt64 = p.contains(.raid6) ? 2 : 1
                guard n > parity else {
                    throw FWError.corrupt("btrfs \(p.name) chunk at logical \(chunk.logical): \(n) stripes")
                }
                let dataStripes = n - parity
                let row = stripeNumber / dataStripes
                location.dataIndex = Int(stripeNumber % dataStripes)
                stripeOffset = row * chunk.stripeLength + inStripe
                let rowSlots = (0..<n).map { Int((row + $0) % n) }
                slots = [rowSlots[location.dataIndex]]
                location.row = try rowSlots.map { try placement(chunk, $0, stripeOffset) }
            } else if p.contains(.raid0) || p.contains(.raid10) {
                let sub = p.contains(.raid10) ? UInt64(max(chunk.subStripes, 1)) : 1
                guard n >= sub, n % sub == 0 else {
                    throw FWError.corrupt("btrfs \(p.name) chunk at logical \(chunk.logical): \(n) stripes, \(sub) sub-stripes")
                }
                let factor = n / sub
                let first = Int((stripeNumber % factor) * sub)
                slots = Array(first..<(first + Int(sub)))
                stripeOffset = (stripeNumber / factor) * chunk.stripeLength + inStripe
            } else {
                // single, DUP, RAID1, RAID1C3, RAID1C4: every stripe is a full copy.
                slots = Array(0..<Int(n))
                stripeOffset = within
                location.contiguous = chunk.length - within
            }
            location.copies = try slots.map { try placement(chunk, $0, stripeOffset) }
            return location
        }

        private func placement(_ chunk: Chunk, _ slot: Int, _ stripeOffset: UInt64) throws -> Placement {
            let (offset, overflow) = chunk.stripes[slot].offset.addingReportingOverflow(stripeOffset)
            guard !overflow else { throw FWError.corrupt("btrfs chunk at logical \(chunk.logical): stripe offset overflows") }
            return Placement(deviceID: chunk.stripes[slot].deviceID, offset: offset)
        }
    }

    /// Parses `sys_chunk_array`: (disk key, chunk) pairs filling `size` bytes.
    static func systemChunks(_ bytes: [UInt8], size: UInt32) throws -> [Chunk] {
        guard size <= 2048 else { throw FWError.corrupt("btrfs sys_chunk_array_size \(size) is over 2048") }
        let c = ByteCursor(Array(bytes[0..<Int(size)]), context: "btrfs sys_chunk_array")
        var position = 0
        var result: [Chunk] = []
        while position < c.count {
            let key = try Key(c, at: position)
            guard key.type == ItemType.chunkItem.rawValue else {
                throw FWError.corrupt("btrfs sys_chunk_array holds a key of type \(key.type), not a chunk")
            }
            let chunk = try Chunk(logical: key.offset, c, at: position + 17)
            result.append(chunk)
            position += 17 + chunk.byteCount
        }
        return result
    }
}
