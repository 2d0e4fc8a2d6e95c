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

    /// Logical addresses to byte offsets on this device, from the superblock's sys_chunk_array
    /// and the chunk tree.
    struct ChunkMap {
        /// Sorted by `logical`, not overlapping.
        private(set) var chunks: [Chunk] = []
        /// The device this reader reads (the superblock's `dev_item.devid`).
        let deviceID: UInt64

        init(deviceID: UInt64) { self.deviceID = deviceID }

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

        /// Where `logical` lives on this device, and how many bytes from there are contiguous
        /// (up to the end of its stripe). `mirror` picks among the copies (DUP, RAID1*, RAID10)
        /// that are on this device; nil when there is no such copy.
        func physical(_ logical: UInt64, mirror: Int = 0) throws -> (offset: UInt64, contiguous: UInt64)? {
            guard let chunk = chunk(containing: logical) else {
                throw FWError.corrupt("btrfs logical address \(logical) is in no chunk")
            }
            let within = logical - chunk.logical
            let p = chunk.profile
            let n = UInt64(chunk.stripes.count)
            var candidates: [Int]
            var stripeOffset: UInt64
            var contiguous: UInt64
            if p.contains(.raid5) || p.contains(.raid6) {
                // Data stripes rotate with the parity (`btrfs_map_block`, mirror 0): the data
                // stripe stripe_nr % data_stripes of row stripe_nr / data_stripes sits on device
                // slot (row + index) % num_stripes. Only the data is read (no reconstruction).
                let parity: UInt64 = p.contains(.raid6) ? 2 : 1
                guard n > parity else {
                    throw FWError.corrupt("btrfs \(p.name) chunk at logical \(chunk.logical): \(n) stripes")
                }
                let dataStripes = n - parity
                let stripeNumber = within / chunk.stripeLength
                let row = stripeNumber / dataStripes
                candidates = [Int((row + stripeNumber % dataStripes) % n)]
                let inStripe = within % chunk.stripeLength
                stripeOffset = row * chunk.stripeLength + inStripe
                contiguous = chunk.stripeLength - inStripe
            } else if p.contains(.raid0) || p.contains(.raid10) {
                let sub = p.contains(.raid10) ? UInt64(max(chunk.subStripes, 1)) : 1
                guard n >= sub, n % sub == 0 else {
                    throw FWError.corrupt("btrfs \(p.name) chunk at logical \(chunk.logical): \(n) stripes, \(sub) sub-stripes")
                }
                let factor = n / sub
                let stripeNumber = within / chunk.stripeLength
                let first = Int((stripeNumber % factor) * sub)
                candidates = Array(first..<(first + Int(sub)))
                let inStripe = within % chunk.stripeLength
                stripeOffset = (stripeNumber / factor) * chunk.stripeLength + inStripe
                contiguous = chunk.stripeLength - inStripe
            } else {
                // single, DUP, RAID1, RAID1C3, RAID1C4: every stripe is a full copy.
                candidates = Array(0..<Int(n))
                stripeOffset = within
                contiguous = chunk.length - within
            }
            let here = candidates.filter { chunk.stripes[$0].deviceID == deviceID }
            guard mirror < here.count else {
                if mirror == 0 {
                    let devices = Set(candidates.map { chunk.stripes[$0].deviceID }).sorted()
                    let what = p.contains(.raid5) || p.contains(.raid6) ? " (rebuilding it from parity is not supported)" : ""
                    throw FWError.unsupported("btrfs logical address \(logical) (\(p.name) chunk) lives on device(s) \(devices), not on this device (id \(deviceID))\(what); reading a multi-device btrfs from its other devices is not supported yet")
                }
                return nil
            }
            let (offset, overflow) = chunk.stripes[here[mirror]].offset.addingReportingOverflow(stripeOffset)
            guard !overflow else { throw FWError.corrupt("btrfs chunk at logical \(chunk.logical): stripe offset overflows") }
            return (offset, contiguous)
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
