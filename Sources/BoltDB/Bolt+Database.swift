import DiskImage

extension Bolt {
    /// An open bbolt file: the current meta page and its pages, read on demand from a
    /// `ByteSource` (a page cache keeps what was read, within a byte budget).
    /// Used from one thread at a time.
    public final class Database {
        public let source: any ByteSource
        /// The file's path, named in every error ("/mnt/data/docker/.../meta.db").
        public let name: String
        public let meta: Meta
        /// The byte order of the machine that wrote the file (from the magic).
        let endianness: Endianness
        private var cache: [UInt64: [UInt8]] = [:]
        private var cachedBytes = 0
        static let cacheBudget = 32 << 20

        public init(source: any ByteSource, name: String) throws {
            self.source = source
            self.name = name
            let head = try Self.read(source, at: 0, count: min(UInt64(Bolt.pageHeaderSize + Bolt.metaSize), source.size), name: name)
            let probe = ByteCursor(head, context: "bbolt meta page 0")
            let endianness: Endianness
            switch probe.integerIfPresent(at: Bolt.pageHeaderSize, endianness: .little, as: UInt32.self) {
            case Bolt.magic?: endianness = .little
            case Bolt.magic.byteSwapped?: endianness = .big
            default:
                // Meta page 0 may be torn; its twin decides (probed at the usual page sizes).
                endianness = .little
            }
            var metas: [Meta] = []
            var firstProblem: String?
            switch Self.decodeMeta(head, endianness: endianness, page: 0) {
            case .success(let m): metas.append(m)
            case .failure(let p): firstProblem = "meta page 0: \(p)"
            }
            let candidates: [UInt64] = metas.first.map { [UInt64($0.pageSize)] } ?? [4096, 16384, 65536, 8192, 32768, 1024, 2048, 512]
            for offset in candidates where offset + UInt64(Bolt.pageHeaderSize + Bolt.metaSize) <= source.size {
                let bytes = try Self.read(source, at: offset, count: UInt64(Bolt.pageHeaderSize + Bolt.metaSize), name: name)
                for order in metas.isEmpty ? [Endianness.little, .big] : [endianness] {
                    if case .success(let m) = Self.decodeMeta(bytes, endianness: order, page: 1), UInt64(m.pageSize) == offset {
                        metas.append(m)
                        break
                    }
                }
                if metas.contains(where: { $0.page == 1 }) { break }
            }
            guard let best = metas.max(by: { $0.txid < $1.txid }) else {
                throw FWError(.corrupt, "not a bbolt file or both meta pages are invalid (\(firstProblem ?? "meta page 1 invalid"))",
                              at: source.place, path: name)
            }
            // Both metas agree on the byte order when both are valid; use the chosen one's.
            let chosen: Endianness
            if best.page == 0 { chosen = endianness } else {
                let bytes = try Self.read(source, at: UInt64(best.pageSize), count: UInt64(Bolt.pageHeaderSize + Bolt.metaSize), name: name)
                let magic = ByteCursor(bytes).integerIfPresent(at: Bolt.pageHeaderSize, endianness: .little, as: UInt32.self)
                chosen = magic == Bolt.magic ? .little : .big
            }
            self.meta = best
            self.endianness = chosen
            // Pages past the end of a truncated file are caught when read (`page(_:)`).
            guard best.pageCount >= 2, !best.pageCount.multipliedReportingOverflow(by: UInt64(best.pageSize)).overflow else {
                throw FWError(.corrupt, "meta page \(best.page) claims \(best.pageCount) pages", at: source.place, path: name)
            }
        }

        enum MetaResult { case success(Meta), failure(String) }

        static func decodeMeta(_ page: [UInt8], endianness: Endianness, page index: Int) -> MetaResult {
            let b = ByteCursor(page, context: "bbolt meta page \(index)")
            func u32(_ at: Int) -> UInt32? { b.integerIfPresent(at: at, endianness: endianness) }
            func u64(_ at: Int) -> UInt64? { b.integerIfPresent(at: at, endianness: endianness) }
            let m = Bolt.pageHeaderSize
            guard page.count >= m + Bolt.metaSize, let flags = b.integerIfPresent(at: 8, endianness: endianness, as: UInt16.self),
                  let magic = u32(m), let version = u32(m + 4), let pageSize = u32(m + 8), let metaFlags = u32(m + 12),
                  let root = u64(m + 16), let seq = u64(m + 24), let freelist = u64(m + 32), let pgid = u64(m + 40),
                  let txid = u64(m + 48), let checksum = u64(m + 56)
            else { return .failure("truncated") }
            guard magic == Bolt.magic else { return .failure("bad magic 0x\(String(magic, radix: 16))") }
            guard version == Bolt.version else { return .failure("version \(version), expected \(Bolt.version)") }
            guard flags & Bolt.metaFlag != 0 else { return .failure("page flags 0x\(String(flags, radix: 16)) are not a meta page's") }
            let sum = Bolt.fnv1a64(page[m..<(m + 56)])
            guard checksum == sum else { return .failure("checksum 0x\(String(checksum, radix: 16)) != 0x\(String(sum, radix: 16))") }
            guard pageSize >= 512, pageSize <= 1 << 20, pageSize & (pageSize - 1) == 0 else {
                return .failure("page size \(pageSize) is not a power of two in 512...1 MiB")
            }
            return .success(Meta(pageSize: pageSize, flags: metaFlags, root: BucketHeader(root: root, sequence: seq),
                                 freelist: freelist, pageCount: pgid, txid: txid, checksum: checksum, page: index))
        }

        static func read(_ source: any ByteSource, at offset: UInt64, count: UInt64, name: String) throws -> [UInt8] {
            do {
                return try source.bytes(at: offset, count: Int(count))
            } catch let e as FWError {
                throw e.within(source.place, path: name)
            }
        }

        func error(_ message: String) -> FWError {
            FWError(.corrupt, message, at: source.place, path: name)
        }

        /// Page `id` with its overflow pages, checked: inside the file and below the high-water
        /// mark, its header's id matching.
        func page(_ id: UInt64) throws -> ByteCursor {
            if let bytes = cache[id] { return ByteCursor(bytes, context: "page \(id)") }
            let size = UInt64(meta.pageSize)
            guard id >= 2, id < meta.pageCount else {
                throw error("page \(id) is outside the \(meta.pageCount) pages in use")
            }
            let (offset, o1) = id.multipliedReportingOverflow(by: size)
            guard !o1, offset + size <= source.size else {
                throw error("page \(id) at offset \(offset) is past the end of the file (\(source.size) bytes)")
            }
            let head = ByteCursor(try Self.read(source, at: offset, count: UInt64(Bolt.pageHeaderSize), name: name))
            guard let overflow = head.integerIfPresent(at: 12, endianness: endianness, as: UInt32.self),
                  let pid = head.integerIfPresent(at: 0, endianness: endianness, as: UInt64.self) else { throw error("page \(id): short header") }
            guard pid == id else { throw error("page \(id): its header says page \(pid)") }
            let (last, o2) = id.addingReportingOverflow(UInt64(overflow))
            guard !o2, last < meta.pageCount else {
                throw error("page \(id): \(overflow) overflow pages run past the \(meta.pageCount) pages in use")
            }
            let length = (UInt64(overflow) + 1) * size
            guard length <= UInt64(maximumSingleRead), offset + length <= source.size else {
                throw error("page \(id): \(length) bytes with its overflow pages run past the end of the file")
            }
            let bytes = try Self.read(source, at: offset, count: length, name: name)
            if cachedBytes + bytes.count > Self.cacheBudget {
                cache.removeAll(keepingCapacity: true)
                cachedBytes = 0
            }
            cache[id] = bytes
            cachedBytes += bytes.count
            return ByteCursor(bytes, context: "page \(id)")
        }

        /// The root bucket (its keys are the top-level buckets).
        public var root: Bucket { Bucket(database: self, header: meta.root, inline: nil, path: []) }
    }
}
