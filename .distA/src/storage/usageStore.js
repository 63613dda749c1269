export {};
//# sourceMappingURL=usageStore.js.map