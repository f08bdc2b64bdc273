import { test } from "node:test";
import assert from "node:assert/strict";
import { AddressRefused, hostOf, isPrivateAddress, publicAddresses } from "./address-policy.js";

test("loopback, private, link-local and unspecified addresses are private, in IPv4 and IPv6", () => {
  for (const address of [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255",
    "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "febf::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1", "::ffff:a9fe:a9fe", "64:ff9b::10.0.0.1",
  ]) assert.equal(isPrivateAddress(address), true, address);
});

test("public addresses are not, including the neighbours of every private range", () => {
  for (const address of [
    "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "11.0.0.1", "9.255.255.255", "192.169.0.1", "169.255.0.1",
    "126.255.255.255", "128.0.0.1", "2001:4860:4860::8888", "2606:4700::1111", "fbff::1", "fec0::1", "::ffff:8.8.8.8",
  ]) assert.equal(isPrivateAddress(address), false, address);
});

test("what is not an address is never public", () => {
  assert.equal(isPrivateAddress("example.com"), true);
  assert.equal(isPrivateAddress(""), true);
});

test("an IPv6 host is taken out of its brackets; literal hosts are checked without DNS", async () => {
  assert.equal(hostOf(new URL("http://[::1]:8080/x")), "::1");
  await assert.rejects(publicAddresses("::1"), AddressRefused);
  await assert.rejects(publicAddresses("127.0.0.1"), AddressRefused);
  await assert.rejects(publicAddresses(hostOf(new URL("http://[fe80::1]/"))), AddressRefused);
  assert.deepEqual(await publicAddresses("8.8.8.8"), [{ address: "8.8.8.8", family: 4 }]);
});

test("a name is resolved and every address it has is checked (localhost is loopback)", async () => {
  await assert.rejects(publicAddresses("localhost"), AddressRefused);
});
