import DiskImage

extension Bolt {
    /// A bucket: its entries in key order, read on demand (branch pages followed with a depth
    /// budget and a visited set, so a loop or a shared page is an error, not a hang).
    public struct Bucket {
        public let database: Database
        public let header: BucketHeader
        /// The inline page (bytes after the bucket header) when `header.root == 0`.
        let inline: [UInt8]?
        /// Bucket names from the root, for messages.
        public let path: [String]

        var display: String { path.isEmpty ? "root bucket" : "bucket " + path.joined(separator: "/") }

        /// Every key of the bucket in order, values and nested buckets.
        public func entries() throws -> [Entry] {
            var result: [Entry] = []
            if let inline {
                try leafEntries(ByteCursor(inline, context: "inline page"), page: "inline page", into: &result)
                return result
            }
            var visited = Set<UInt64>()
            try collect(header.root, depth: 0, visited: &visited, into: &result)
            return result
        }

        private func collect(_ id: UInt64, depth: Int, visited: inout Set<UInt64>, into result: inout [Entry]) throws {
            guard depth < Bolt.maximumDepth else {
                throw database.error("\(display): branch pages nest deeper than \(Bolt.maximumDepth) levels")
            }
            guard visited.insert(id).inserted else {
                throw database.error("\(display): page \(id) is reached twice (a loop)")
            }
            let page = try database.page(id)
            let order = database.endianness
            guard let flags = page.integerIfPresent(at: 8, endianness: order, as: UInt16.self),
                  let count = page.integerIfPresent(at: 10, endianness: order, as: UInt16.self) else { throw database.error("\(display): page \(id): short header") }
            if flags & Bolt.leafFlag != 0 {
                try leafEntries(page, page: "page \(id)", into: &result)
            } else if flags & Bolt.branchFlag != 0 {
                for i in 0..<Int(count) {
                    let e = Bolt.pageHeaderSize + i * Bolt.elementSize
                    guard let child = page.integerIfPresent(at: e + 8, endianness: order, as: UInt64.self) else { throw database.error("\(display): page \(id): element \(i) is outside the page") }
                    try collect(child, depth: depth + 1, visited: &visited, into: &result)
                }
            } else {
                throw database.error("\(display): page \(id) has flags 0x\(String(flags, radix: 16)), not a branch or leaf page")
            }
        }

        private func leafEntries(_ page: ByteCursor, page name: String, into result: inout [Entry]) throws {
            let order = database.endianness
            func u32(_ at: Int) -> UInt32? { page.integerIfPresent(at: at, endianness: order) }
            guard let flags = page.integerIfPresent(at: 8, endianness: order, as: UInt16.self),
                  let count = page.integerIfPresent(at: 10, endianness: order, as: UInt16.self) else { throw database.error("\(display): \(name): short header") }
            guard flags & Bolt.leafFlag != 0 else {
                throw database.error("\(display): \(name) has flags 0x\(String(flags, radix: 16)), not a leaf page")
            }
            for i in 0..<Int(count) {
                let e = Bolt.pageHeaderSize + i * Bolt.elementSize
                guard let eflags = u32(e), let pos = u32(e + 4), let ksize = u32(e + 8), let vsize = u32(e + 12) else {
                    throw database.error("\(display): \(name): element \(i) is outside the page")
                }
                let (k, o1) = e.addingReportingOverflow(Int(pos))
                let (v, o2) = k.addingReportingOverflow(Int(ksize))
                let (end, o3) = v.addingReportingOverflow(Int(vsize))
                guard !o1, !o2, !o3, end <= page.bytes.count else {
                    throw database.error("\(display): \(name): element \(i) (key \(ksize) bytes, value \(vsize) bytes) runs past its page")
                }
                guard result.count < Bolt.maximumEntries else {
                    throw database.error("\(display): more than \(Bolt.maximumEntries) entries")
                }
                result.append(Entry(key: Array(page.bytes[k..<v]), value: Array(page.bytes[v..<end]),
                                    isBucket: eflags & Bolt.bucketLeafFlag != 0))
            }
        }

        /// The nested bucket of an entry (which must be a bucket).
        public func bucket(_ entry: Entry) throws -> Bucket {
            let name = path + [entry.keyString]
            guard path.count < Bolt.maximumDepth else { throw database.error("buckets nest deeper than \(Bolt.maximumDepth) levels") }
            let b = ByteCursor(entry.value, context: "bucket header")
            guard entry.isBucket, let root = b.integerIfPresent(at: 0, endianness: database.endianness, as: UInt64.self),
                  let sequence = b.integerIfPresent(at: 8, endianness: database.endianness, as: UInt64.self) else {
                throw database.error("bucket \(name.joined(separator: "/")): value of \(entry.value.count) bytes is not a bucket header")
            }
            let header = BucketHeader(root: root, sequence: sequence)
            if root == 0 {
                guard entry.value.count >= 16 + Bolt.pageHeaderSize else {
                    throw database.error("bucket \(name.joined(separator: "/")): inline bucket of \(entry.value.count) bytes has no page")
                }
                return Bucket(database: database, header: header, inline: Array(entry.value[16...]), path: name)
            }
            return Bucket(database: database, header: header, inline: nil, path: name)
        }

        /// The nested bucket called `name`, or nil.
        public func bucket(named name: String) throws -> Bucket? {
            guard let e = try entries().first(where: { $0.isBucket && $0.key == Array(name.utf8) }) else { return nil }
            return try bucket(e)
        }

        /// Follows a path of bucket names; nil when one is missing.
        public func bucket(path names: [String]) throws -> Bucket? {
            var current = self
            for name in names {
                guard let next = try current.bucket(named: name) else { return nil }
                current = next
            }
            return current
        }

        /// The plain values of the bucket, by key (nested buckets left out).
        public func values() throws -> [String: [UInt8]] {
            var result: [String: [UInt8]] = [:]
            for e in try entries() where !e.isBucket { result[e.keyString] = e.value }
            return result
        }

        /// The nested buckets, by name, in key order.
        public func buckets() throws -> [(name: String, bucket: Bucket)] {
            try entries().filter(\.isBucket).map { ($0.keyString, try bucket($0)) }
        }
    }
}
